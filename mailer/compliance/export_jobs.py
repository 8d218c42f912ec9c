"""Consent audit exports as background jobs: the admin pages ask, an RQ job streams the export
(`mailer.compliance.audit_export`) into a file under the instance folder, and the file is
deleted when it expires.

Why a job and a file: an audit of a large ledger takes minutes, longer than a page request
should hold; the job reports rows done / total as it goes, so the page can show a progress
bar, and the file is downloaded when it is complete. Rows are streamed from keyset pages to
the file, never held in memory. The file name is random (never guessable from the id) and
only the signed-in download view serves it. Files expire (`MAILER_EXPORT_TTL_HOURS`) and
`purge_expired` (hourly, from `mailer cron`) deletes them; the row stays as a record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailer import tasks
from mailer.compliance import audit_export, staff_log
from mailer.compliance.models import ExportJob, ExportStatus
from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.database import after_commit, utcnow

log = logging.getLogger(__name__)

FOLDER = "exports"  # under the instance folder
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
# Rows between progress commits: about a second of work. On PostgreSQL each step is one COPY
# over that many ledger positions, so much smaller steps would cost more statements than rows.
PROGRESS_EVERY = 20_000
PURGE_ACTION = "retention.export_files"
PURGE_ACTOR = "retention"
UNFINISHED = (ExportStatus.QUEUED, ExportStatus.RUNNING)


class Stopped(Exception):
    """The export's row left the running state while the job wrote (expired or replaced)."""


def folder(instance_path: Path) -> Path:
    return instance_path / FOLDER


def filters_of(flt: audit_export.Filter) -> dict[str, Any]:
    """The filter as stored on the row and shown on the pages (JSON-friendly)."""
    return {
        "since": flt.since.isoformat() if flt.since else None,
        "until": flt.until.isoformat() if flt.until else None,
        "types": [t.value for t in flt.types],
        "topic": flt.topic,
        "form_id": flt.form_id,
    }


def filter_from(data: dict[str, Any]) -> audit_export.Filter:
    since, until = data.get("since"), data.get("until")
    return audit_export.Filter(
        since=datetime.fromisoformat(since) if since else None,
        until=datetime.fromisoformat(until) if until else None,
        types=tuple(ConsentEventType(t) for t in data.get("types") or ()),
        topic=data.get("topic") or None,
        form_id=data.get("form_id"),
    )


def request(
    session: Session,
    flt: audit_export.Filter,
    fmt: str,
    *,
    user_id: int | None,
    requested_by: str,
    ttl_hours: int,
) -> ExportJob:
    """Record the request and enqueue its job once committed. Commits. Each call is a new
    export (asking twice makes two files)."""
    if fmt not in FORMATS:
        raise ValueError("format must be csv or jsonl")
    now = utcnow()
    export = ExportJob(
        user_id=user_id,
        requested_by=requested_by[:320],
        filters=filters_of(flt),
        format=fmt,
        status=ExportStatus.QUEUED,
        rows_done=0,
        created_at=now,
        # A job that never finishes still has its partial file removed after the same delay.
        expires_at=now + timedelta(hours=ttl_hours),
    )
    session.add(export)
    session.flush()
    export_id = export.id
    after_commit(session, lambda: tasks.enqueue(tasks.RUN_EXPORT, export_id))
    session.commit()
    return export


def count(session: Session, flt: audit_export.Filter) -> int:
    """How many events the export will hold: the same filter as `audit_export.rows`, counted
    in SQL. The topic matches as a whole JSON string (slugs hold no quotes), as the export's
    own `topic in event.topics` does."""
    query = select(func.count()).select_from(ConsentEvent)
    if flt.since:
        query = query.where(ConsentEvent.occurred_at >= flt.since)
    if flt.until:
        query = query.where(ConsentEvent.occurred_at < flt.until)
    if flt.types:
        query = query.where(ConsentEvent.type.in_(flt.types))
    if flt.form_id is not None:
        query = query.where(ConsentEvent.form_id == flt.form_id)
    if flt.topic:
        escaped = flt.topic.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(cast(ConsentEvent.topics, String).like(f'%"{escaped}"%', escape="\\"))
    return session.scalar(query) or 0


def _frozen(flt: audit_export.Filter, now: datetime) -> audit_export.Filter:
    """The filter with its end at `now` at the latest: events chained while the job writes
    are not in this export, so rows done never outruns the total."""
    until = min(flt.until, now) if flt.until else now
    return audit_export.Filter(flt.since, until, flt.types, flt.topic, flt.form_id)


def run(factory: sessionmaker[Session], export_id: int, directory: Path, ttl_hours: int) -> bool:
    """Write the export's file; True when it was written. Commits progress every
    `PROGRESS_EVERY` rows (on a session of its own) and the outcome at the end.

    Safe to rerun: only a queued or running export is (re)written, from the start, into the
    same file; a finished, failed or expired one is left alone. A failure is recorded on the
    row (shown on the page) and the partial file removed; it is not retried.
    """
    with factory() as session:
        export = session.get(ExportJob, export_id, with_for_update=True)
        if export is None or export.status not in UNFINISHED:
            return False
        now = utcnow()
        flt = _frozen(filter_from(export.filters), now)
        export.status = ExportStatus.RUNNING
        export.started_at = now
        export.rows_done = 0
        export.rows_total = count(session, flt)
        export.file_name = export.file_name or _new_name(export.format)
        fmt, name = export.format, export.file_name
        session.commit()

    path = directory / name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        rows, size = _write(factory, export_id, flt, fmt, path)
    except Stopped:
        path.unlink(missing_ok=True)
        return False
    except Exception as exc:  # recorded for the person waiting on the page
        log.exception("export %s failed", export_id)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        _finish(factory, export_id, ExportStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return False
    finished = utcnow()
    return _finish(
        factory,
        export_id,
        ExportStatus.DONE,
        rows_done=rows,
        rows_total=rows,
        size_bytes=size,
        finished_at=finished,
        expires_at=finished + timedelta(hours=ttl_hours),
    )


def _new_name(fmt: str) -> str:
    return f"{secrets.token_urlsafe(24)}.{fmt}"


def _write(
    factory: sessionmaker[Session],
    export_id: int,
    flt: audit_export.Filter,
    fmt: str,
    path: Path,
) -> tuple[int, int]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with (
        factory() as reader,
        factory() as progress,
        os.fdopen(fd, "wb") as out,
    ):

        def tick(rows: int) -> None:
            moved = progress.execute(
                update(ExportJob)
                .where(ExportJob.id == export_id, ExportJob.status == ExportStatus.RUNNING)
                .values(rows_done=rows)
                .execution_options(synchronize_session=False)
            ).rowcount
            progress.commit()
            if not moved:
                raise Stopped(export_id)

        rows = audit_export.write_bytes(reader, flt, out, fmt, progress=tick, every=PROGRESS_EVERY)
    return rows, path.stat().st_size


def _finish(
    factory: sessionmaker[Session], export_id: int, status: ExportStatus, **values: Any
) -> bool:
    with factory() as session:
        moved = session.execute(
            update(ExportJob)
            .where(ExportJob.id == export_id, ExportJob.status == ExportStatus.RUNNING)
            .values(status=status, finished_at=values.pop("finished_at", utcnow()), **values)
            .execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
    return bool(moved) and status is ExportStatus.DONE


@dataclass(frozen=True)
class Download:
    path: Path
    download_name: str
    mimetype: str


def download(export: ExportJob, directory: Path, now: datetime | None = None) -> Download | None:
    """The file to send for a finished, unexpired export, or None. Read-only."""
    now = now or utcnow()
    if export.status is not ExportStatus.DONE or not export.file_name:
        return None
    if export.expires_at is not None and export.expires_at <= now:
        return None
    path = directory / export.file_name
    if not path.is_file():
        return None
    stamp = (export.finished_at or export.created_at).strftime("%Y%m%dT%H%M%SZ")
    return Download(path, f"consent-{stamp}-{export.id}.{export.format}", FORMATS[export.format])


def page(session: Session, page_number: int, per_page: int) -> tuple[list[ExportJob], int]:
    """Exports, newest first, and how many there are. Read-only."""
    total = session.scalar(select(func.count()).select_from(ExportJob)) or 0
    rows = session.scalars(
        select(ExportJob)
        .order_by(ExportJob.id.desc())
        .offset((page_number - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(rows), total


def purge_expired(session: Session, directory: Path, now: datetime | None = None) -> int:
    """Delete the files of exports past their expiry and mark them expired; returns how many.
    Each run that purged something is counted on the staff audit log (it runs hourly: empty
    runs would bury the log). Commits. Safe to rerun: an expired export is not touched again."""
    now = now or utcnow()
    expired = session.scalars(
        select(ExportJob).where(
            ExportJob.status != ExportStatus.EXPIRED, ExportJob.expires_at <= now
        )
    ).all()
    for export in expired:
        if export.file_name:
            (directory / export.file_name).unlink(missing_ok=True)
        export.status = ExportStatus.EXPIRED
        export.file_name = None
    session.commit()
    if expired:
        staff_log.record(
            session,
            staff_log.Staff(api_key_name=PURGE_ACTOR),
            PURGE_ACTION,
            "cron retention",
            details={"purged": len(expired), "export_ids": [e.id for e in expired][:1000]},
        )
    return len(expired)
