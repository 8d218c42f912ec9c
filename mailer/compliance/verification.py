"""Checking the consent ledger on request, and remembering what was found.

The walk is `mailer.consent.chain.verify`, the same code `mailer consent verify` runs. Each
run is put on the staff audit log (action `ledger.verify`, who ran it and the outcome), so the
admin page can say when the ledger was last checked, by whom, and what was found, and a
compliance officer can show that checks happened. Ledgers larger than `INLINE_LIMIT` events
are walked by an RQ job (`workers.jobs.verify_ledger`) while the page polls for the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import tasks
from mailer.compliance import actors, staff_log
from mailer.compliance.models import StaffAccess
from mailer.consent import chain
from mailer.consent.models import LedgerAnchor, LedgerHead

ACTION = "ledger.verify"
# Up to this many events the walk runs during the request (well under a second per 10,000).
INLINE_LIMIT = 50_000
JOB_ID = "ledger-verify"  # one walk at a time, whoever asks
WAITING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def summary(report: chain.Report) -> dict[str, Any]:
    """The report as the staff audit log keeps it."""
    problem = report.problem
    return {
        "ok": report.ok,
        "checked": report.checked,
        "anchors_checked": report.anchors_checked,
        "head_seq": report.head_seq,
        "head_hash": report.head_hash,
        "problem": (
            {
                "kind": problem.kind,
                "seq": problem.seq,
                "event_id": problem.event_id,
                "detail": problem.detail,
                "text": str(problem),
            }
            if problem
            else None
        ),
    }


def run(session: Session, staff: staff_log.Staff, endpoint: str) -> chain.Report:
    """Walk the chain and record the outcome. Commits (the record). Rerunning is safe: each
    run is one more record."""
    report = chain.verify(session)
    staff_log.record(session, staff, ACTION, endpoint, details=summary(report))
    return report


@dataclass(frozen=True)
class LastRun:
    at: datetime
    by: str
    ok: bool
    checked: int
    anchors_checked: int
    head_seq: int
    head_hash: str
    problem: dict[str, Any] | None


def last_run(session: Session) -> LastRun | None:
    """The latest recorded walk, or None if the ledger was never checked. Read-only."""
    row = session.scalar(
        select(StaffAccess)
        .where(StaffAccess.action == ACTION)
        .order_by(StaffAccess.id.desc())
        .limit(1)
    )
    if row is None:
        return None
    d = row.details or {}
    return LastRun(
        at=row.occurred_at,
        by=actors.names(session, [row])[row.id],
        ok=bool(d.get("ok")),
        checked=int(d.get("checked") or 0),
        anchors_checked=int(d.get("anchors_checked") or 0),
        head_seq=int(d.get("head_seq") or 0),
        head_hash=str(d.get("head_hash") or ""),
        problem=d.get("problem"),
    )


def size(session: Session) -> int:
    """Events in the ledger (the head's sequence number). Read-only."""
    return session.scalar(select(LedgerHead.seq).where(LedgerHead.id == 1)) or 0


def anchors(session: Session, limit: int = 10) -> list[LedgerAnchor]:
    """The latest anchors, newest first. Read-only."""
    return list(session.scalars(select(LedgerAnchor).order_by(LedgerAnchor.id.desc()).limit(limit)))


def start_background(user_id: int) -> bool:
    """Enqueue the walk for `user_id` (False when Redis is unreachable). One job id: asking
    again while it waits does not queue a second walk."""
    return tasks.enqueue(tasks.VERIFY_LEDGER, user_id, job_id=JOB_ID)


def running(redis: Redis) -> bool:
    """A background walk is waiting or under way."""
    try:
        job = Job.fetch(JOB_ID, connection=redis)
        return job.get_status(refresh=False) in WAITING
    except (NoSuchJobError, RedisError):  # no job; or Redis down, so no job can run either
        return False
