"""Write the sign-ups waiting in the intake stream, a batch per transaction.

For each batch (up to `BATCH_SIZE` entries, in stream order) one transaction writes what
`signup.write_requests` writes for every request (subscriber, pending subscriptions, the
"requested" event at the request's own time with the evidence captured then, the confirmation
email under the window rule), with the ledger head taken once; the emails are enqueued after
the commit, and only then are the entries acknowledged and deleted.

Safe to rerun and to run concurrently: an entry is written once whatever happens. Entries
already written (their reader died between the commit and the acknowledgement) are skipped by
their consent event's `intake_id`, and a concurrent drain that wrote one first makes this one
roll back and try again without it. An entry that can never be written (unreadable, its form
or consent text version gone) is logged and acknowledged: it must not hold up the rest; so is
one whose address was erased after the request was made (the erasure stands). The
database down: the run hands its entries back (`intake.release`) and fails; the next run, a
retry of the job or `mailer cron` a few seconds on, writes them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.pseudonyms import keyed
from mailer.subscribers import intake, signup
from mailer.subscribers.models import Form, Topic

log = logging.getLogger(__name__)

BATCH_SIZE = 500
MAX_BATCHES = 20
# Pending this long, an entry's reader is presumed dead (a batch takes well under a second).
RECLAIM_IDLE_MS = 30_000
_RETRIES = 3


@dataclass
class DrainReport:
    written: int = 0  # sign-ups written
    duplicates: int = 0  # already written by an earlier run (its reader died before acking)
    dropped: int = 0  # entries that can never be written (logged)
    reclaimed: int = 0  # entries taken over from a run that stopped
    more: bool = False  # stopped at `max_batches` with entries still waiting


def drain(
    session: Session,
    connection: redis.Redis,
    *,
    window_seconds: int,
    domain: str,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    reclaim_idle_ms: int = RECLAIM_IDLE_MS,
    consumer: str | None = None,
) -> DrainReport:
    """Take over entries a stopped run left pending, then write new ones until the stream is
    empty or `max_batches` were written (`more` then says so). Commits once per batch."""
    intake.ensure_group(connection)
    consumer = consumer or intake.consumer_name()
    report = DrainReport()
    start = "0-0"
    for _ in range(max_batches):
        start, entries, gone = intake.claim_stale(
            connection, consumer, reclaim_idle_ms, batch_size, start
        )
        intake.acknowledge(connection, gone)
        if entries:
            report.reclaimed += len(entries)
            _batch(session, connection, consumer, entries, window_seconds, domain, report)
        if start == "0-0":
            break
    for n in range(max_batches):
        entries = intake.read_new(connection, consumer, batch_size)
        if not entries:
            break
        _batch(session, connection, consumer, entries, window_seconds, domain, report)
        if n == max_batches - 1:
            report.more = intake.waiting(connection) > 0
    intake.retire(connection, consumer)
    return report


def _batch(
    session: Session,
    connection: redis.Redis,
    consumer: str,
    entries: list[intake.Entry],
    window: int,
    domain: str,
    report: DrainReport,
) -> None:
    ids = [entry_id for entry_id, _ in entries]
    try:
        _commit(session, entries, window, domain, report)
    except (OperationalError, DisconnectionError) as exc:
        # The database is away (restart, failover, lock timeout): a later run writes these.
        _rollback(session)
        intake.release(connection, consumer, ids, idle_ms=10 * RECLAIM_IDLE_MS)
        log.warning("%d sign-ups left in the intake: %s", len(ids), type(exc).__name__)
        raise
    except DBAPIError:
        # Something in one entry the database refuses (never expected: every field is
        # checked when accepted). Find it: the others must not wait behind it.
        _rollback(session)
        if len(entries) == 1:
            log.exception("sign-up intake entry %s dropped: the database refused it", ids[0])
            report.dropped += 1
        else:
            for entry in entries:
                _batch(session, connection, consumer, [entry], window, domain, report)
            return
    intake.acknowledge(connection, ids)


def _commit(
    session: Session, entries: list[intake.Entry], window: int, domain: str, report: DrainReport
) -> None:
    """Write the batch and commit; retried without the entries a concurrent run wrote."""
    for attempt in range(_RETRIES):
        try:
            written, duplicates, dropped = _write(session, entries, window, domain)
            session.commit()
        except IntegrityError:
            session.rollback()
            if attempt == _RETRIES - 1:
                raise
            continue
        report.written += written
        report.duplicates += duplicates
        report.dropped += dropped
        return


def _write(
    session: Session, entries: list[intake.Entry], window: int, domain: str
) -> tuple[int, int, int]:
    """Flush the batch's rows (not committed); returns (written, duplicates, dropped)."""
    requests: list[signup.SignupRequest] = []
    dropped = 0
    for entry_id, fields in entries:
        try:
            requests.append(intake.decode(entry_id, fields))
        except intake.BadEntry as exc:
            log.warning("sign-up intake entry %s dropped: %s", entry_id, exc)
            dropped += 1
    done = set(
        session.scalars(
            select(ConsentEvent.intake_id).where(
                ConsentEvent.intake_id.in_([r.intake_id for r in requests])
            )
        )
    )
    fresh = [r for r in requests if r.intake_id not in done]
    erased = _erased(session, fresh)
    forms = signup.load_forms(session, {r.form_id for r in fresh})
    slugs = sorted({s for r in fresh for s in r.topic_slugs})
    topics = {t.slug: t for t in session.scalars(select(Topic).where(Topic.slug.in_(slugs)))}
    plans = []
    for req in fresh:
        erased_at = erased.get(keyed(session, req.email))
        if erased_at is not None and req.occurred_at is not None and req.occurred_at < erased_at:
            # Asked, then erased before the request was written: the erasure stands.
            log.warning("sign-up intake entry %s dropped: erased since", req.intake_id)
            dropped += 1
            continue
        checked = _plan(req, forms, topics)
        if checked is None:
            dropped += 1
        else:
            plans.append(checked)
    signup.write_requests(session, plans, window, domain)
    return len(plans), len(done), dropped


def _plan(
    req: signup.SignupRequest, forms: dict[int, Form], topics: dict[str, Topic]
) -> signup.Plan | None:
    """The request's rows, or None (logged) when they are gone. The topics were checked
    against the form when the request was accepted: they are looked up as they are, so a form
    edited in the seconds since does not lose a sign-up it accepted."""
    form = forms.get(req.form_id)
    versions = form.versions if form is not None else []
    version = next((v for v in versions if v.id == req.form_version_id), None)
    chosen = [topics.get(slug) for slug in req.topic_slugs]
    if form is None or version is None or None in chosen:
        log.warning("sign-up intake entry %s dropped: its form or topics are gone", req.intake_id)
        return None
    return signup.Plan(req, form, version, [t for t in chosen if t is not None])


def _erased(session: Session, requests: list[signup.SignupRequest]) -> dict[str, datetime]:
    """When each of these addresses (by keyed HMAC) was last erased, for those ever erased."""
    digests = sorted({keyed(session, r.email) for r in requests})
    if not digests:
        return {}
    rows = session.execute(
        select(ConsentEvent.subject_hmac, func.max(ConsentEvent.occurred_at))
        .where(
            ConsentEvent.type == ConsentEventType.ERASED,
            ConsentEvent.subject_hmac.in_(digests),
        )
        .group_by(ConsentEvent.subject_hmac)
    )
    return {digest: at for digest, at in rows}


def _rollback(session: Session) -> None:
    try:
        session.rollback()
    except DBAPIError:  # the connection is gone; the session is reset all the same
        log.debug("rollback on a lost connection", exc_info=True)
