"""Enqueueing jobs by dotted path, only after the transaction that made their rows commits.

`mailer` never imports `workers`; the paths below are checked by a test to resolve.
"""

from __future__ import annotations

import logging
from datetime import datetime

from redis.exceptions import RedisError
from rq import Queue, Retry
from sqlalchemy.orm import Session

from mailer.database import after_commit

log = logging.getLogger(__name__)

SEND_MESSAGE = "workers.jobs.send_message"
REQUEUE_PENDING = "workers.jobs.requeue_pending_messages"
ANCHOR_LEDGER = "workers.jobs.anchor_ledger"
START_CAMPAIGN = "workers.jobs.start_campaign"
SEND_CAMPAIGN = "workers.jobs.send_campaign"
SWEEP_CAMPAIGNS = "workers.jobs.sweep_campaigns"
FLUSH_TRACKING = "workers.jobs.flush_tracking"
APPLY_RETENTION = "workers.jobs.apply_retention"
IMPORT_SUBSCRIBERS = "workers.jobs.import_subscribers"
RUN_EXPORT = "workers.jobs.run_export"
PURGE_EXPORTS = "workers.jobs.purge_exports"
VERIFY_LEDGER = "workers.jobs.verify_ledger"
DRAIN_SIGNUPS = "workers.jobs.drain_signups"
SEND_MESSAGES = "workers.jobs.send_messages"
ALL_JOBS = (
    SEND_MESSAGE,
    REQUEUE_PENDING,
    ANCHOR_LEDGER,
    START_CAMPAIGN,
    SEND_CAMPAIGN,
    SWEEP_CAMPAIGNS,
    FLUSH_TRACKING,
    APPLY_RETENTION,
    IMPORT_SUBSCRIBERS,
    RUN_EXPORT,
    PURGE_EXPORTS,
    VERIFY_LEDGER,
    DRAIN_SIGNUPS,
    SEND_MESSAGES,
)
# Jobs that loop for a while (a sender works up to a minute per run, then hands over).
LONG_JOBS = {SEND_CAMPAIGN: 900, START_CAMPAIGN: 1800}
# Consent audit exports and chain walks over millions of ledger rows.
LONG_JOBS.update({RUN_EXPORT: 4 * 3600, VERIFY_LEDGER: 3600})
# A 50 MB subscriber import, a confirmation request per row without evidence.
LONG_JOBS[IMPORT_SUBSCRIBERS] = 3600

# Temporary SMTP failures: back off from seconds to an hour; RQ's scheduler runs the retries.
RETRY = Retry(max=6, interval=[10, 30, 120, 600, 1800, 3600])

_queue: Queue | None = None
_campaign_queue: Queue | None = None
CAMPAIGN_JOBS = {START_CAMPAIGN, SEND_CAMPAIGN}


def configure(queue: Queue, campaign_queue: Queue | None = None) -> None:
    global _queue, _campaign_queue
    _queue = queue
    _campaign_queue = campaign_queue or queue


def enqueue(
    path: str, *args: object, at: datetime | None = None, job_id: str | None = None
) -> bool:
    """Enqueue (now, or at `at`). A Redis outage is logged, not raised: the row stays pending
    and `requeue_pending_messages` (every 5 minutes, from `mailer cron`) picks it up."""
    if _queue is None or _campaign_queue is None:
        raise RuntimeError("mailer.tasks.configure() was not called")
    queue = _campaign_queue if path in CAMPAIGN_JOBS else _queue
    timeout = LONG_JOBS.get(path, 120)
    options = {"retry": RETRY, "job_timeout": timeout, "failure_ttl": 7 * 24 * 3600}
    if job_id is not None:
        options["job_id"] = job_id  # the same id twice is one job (RQ overwrites it)
    try:
        if at is None:
            queue.enqueue(path, *args, **options)
        else:
            queue.enqueue_at(at, path, *args, **options)
    except RedisError:
        log.warning("could not enqueue %s%s; it stays pending", path, args)
        return False
    return True


def send_after_commit(session: Session, message_id: int, at: datetime | None = None) -> None:
    """Enqueue the send once the transaction commits; `at`: not before then (RQ scheduler)."""
    after_commit(session, lambda: enqueue(SEND_MESSAGE, message_id, at=at))


def send_many_after_commit(session: Session, messages: list[tuple[int, datetime | None]]) -> None:
    """`send_after_commit` for many (message id, at) at once: the ones due now in one
    pipelined `enqueue_many` (a batch of sign-ups queues hundreds of emails)."""
    after_commit(session, lambda: _enqueue_sends(messages))


# System emails due now, per job when a batch of sign-ups queues many: an RQ job has a fixed
# cost (a fork, a database connection, the settings and the DKIM key loaded) worth sharing.
MESSAGES_PER_JOB = 50


def _enqueue_sends(messages: list[tuple[int, datetime | None]]) -> None:
    now = [message_id for message_id, at in messages if at is None]
    for message_id, at in messages:
        if at is not None:
            enqueue(SEND_MESSAGE, message_id, at=at)
    if not now:
        return
    if _queue is None:
        raise RuntimeError("mailer.tasks.configure() was not called")
    chunks = [now[i : i + MESSAGES_PER_JOB] for i in range(0, len(now), MESSAGES_PER_JOB)]
    jobs = [
        Queue.prepare_data(
            SEND_MESSAGE if len(chunk) == 1 else SEND_MESSAGES,
            (chunk[0],) if len(chunk) == 1 else (chunk,),
            timeout=LONG_JOBS.get(SEND_MESSAGE, 120) if len(chunk) == 1 else 600,
            failure_ttl=7 * 24 * 3600,
            retry=RETRY,
        )
        for chunk in chunks
    ]
    try:
        _queue.enqueue_many(jobs)
    except RedisError:
        log.warning("could not enqueue %d sends; they stay pending", len(now))
