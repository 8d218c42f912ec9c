"""CSV imports started from the admin pages: upload, map, preview, then run as an RQ job.

The upload is stored under the instance folder (`imports/<random>.csv`, mode 600: it holds
personal data) and its header read at once, so a file that is not a CSV is refused before
anyone maps it. The job (`run`) feeds the mapped file to the same importer the API uses
(`mailer.subscribers.importer`): rows with evidence come in active with it on the ledger,
rows without evidence come in pending and get the confirmation email of the chosen form;
nobody is downgraded. Progress (rows read) is committed on a session of its own as the
job goes, so the page can show it; the report is kept on the row and the file deleted.
Files of imports nobody started are deleted after a day (`discard_stale`, on each upload).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailer import tasks
from mailer.config import Settings
from mailer.database import after_commit, utcnow
from mailer.subscribers import import_mapping, import_report, import_rows, importer
from mailer.subscribers.import_models import DONE, ImportStatus, SubscriberImport
from mailer.subscribers.models import Form, Topic

log = logging.getLogger(__name__)

FOLDER = "imports"  # under the instance folder
MAX_BYTES = 50 * 1024 * 1024  # as the API's import
MAX_COLUMNS = 200
MAX_NAME = 200
STALE_AFTER = timedelta(days=1)  # an upload nobody started is deleted after this
LEASE = timedelta(minutes=5)  # a running import silent this long lost its worker
PROGRESS_ROWS = 100  # commit progress at most every this many rows ...
PROGRESS_SECONDS = 1.0  # ... or this many seconds
CHUNK = 100  # rows the importer applies at a time (progress follows within a chunk)


class UploadError(ValueError):
    """The upload or its options cannot be used; names the form field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def folder(instance_path: Path) -> Path:
    return instance_path / FOLDER


def path_of(instance_path: Path, imp: SubscriberImport) -> Path:
    return folder(instance_path) / f"{imp.file_token}.csv"


def _store(stream: BinaryIO, dest: Path) -> tuple[int, int]:
    """Copy the upload to `dest` (mode 600); its size and how many lines it has."""
    size = lines = 0
    last = b"\n"
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := stream.read(64 * 1024):
            size += len(chunk)
            if size > MAX_BYTES:
                raise UploadError("file", f"the file is larger than {MAX_BYTES // 2**20} MB")
            lines += chunk.count(b"\n")
            last = chunk[-1:]
            out.write(chunk)
    if last != b"\n":
        lines += 1
    return size, lines


def _header(dest: Path) -> tuple[list[str], str]:
    """The header's cells and the separator they use. Raises `UploadError`."""
    with dest.open("rb") as fh:
        first = fh.readline(1024 * 1024)
    # Only to pick the separator; the header itself is decoded strictly below.
    delimiter = import_mapping.sniff(first.decode("utf-8", "ignore"))
    try:
        with dest.open("rb") as fh:
            cells = import_mapping.read_header(fh, delimiter)
    except import_rows.NotText:
        raise UploadError(
            "file", 'the file is not UTF-8 text: save it as "CSV UTF-8" and upload it again'
        ) from None
    except csv.Error as exc:
        raise UploadError("file", f"the file cannot be read as CSV: {exc}") from None
    if not cells or not any(c.strip() for c in cells):
        raise UploadError("file", "the file is empty: its first line must name the columns")
    if len(cells) > MAX_COLUMNS:
        raise UploadError("file", f"the file has {len(cells)} columns; at most {MAX_COLUMNS}")
    return [c.strip()[:MAX_NAME] for c in cells], delimiter


def receive(
    session: Session,
    instance_path: Path,
    stream: BinaryIO,
    filename: str,
    user_id: int | None,
) -> SubscriberImport:
    """Store an uploaded CSV and read its header into a new import, with a first guess at
    the mapping. Raises `UploadError` (nothing kept). Commits; each call is a new import."""
    discard_stale(session, instance_path)
    directory = folder(instance_path)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    dest = directory / f"{token}.csv"
    try:
        size, lines = _store(stream, dest)
        if size == 0:
            raise UploadError("file", "the file is empty")
        columns, delimiter = _header(dest)
        if lines < 2:
            raise UploadError("file", "the file has a header line but no rows under it")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    name = "".join(ch for ch in os.path.basename(filename or "") if ch.isprintable())
    imp = SubscriberImport(
        created_by_id=user_id,
        status=ImportStatus.UPLOADED,
        filename=name[:MAX_NAME] or "upload.csv",
        file_token=token,
        size_bytes=size,
        delimiter=delimiter,
        columns=columns,
        mapping=import_mapping.guess(columns),
        import_uid=uuid.uuid4().hex,
        rows_total=lines - 1,
    )
    session.add(imp)
    session.commit()
    return imp


def save_mapping(
    session: Session,
    imp: SubscriberImport,
    mapping: Sequence[str],
    form_id: int | None,
    topic: str | None,
) -> dict[str, list[str]]:
    """Check and keep the mapping and options of an import not started yet. Returns the
    problems by form field (nothing kept then). Commits when there are none; rerunning with
    the same values changes nothing."""
    if imp.status is not ImportStatus.UPLOADED:
        return {"mapping": ["this import has started: its mapping cannot change"]}
    errors = import_mapping.check(mapping, imp.columns)
    if form_id is not None:
        form = session.get(Form, form_id)
        if form is None or not form.versions:
            errors["form"] = ["no such form"]
    if topic is not None and session.scalar(select(Topic.id).where(Topic.slug == topic)) is None:
        errors["topic"] = ["no such topic"]
    if errors:
        session.rollback()
        return errors
    imp.mapping = list(mapping)
    imp.form_id = form_id
    imp.topic = topic
    session.commit()
    return {}


def startable(imp: SubscriberImport, now: datetime | None = None) -> bool:
    """Not started; or queued or running but silent past the lease (its job was lost with
    Redis, or its worker died): then it may be started again, which is safe."""
    now = now or utcnow()
    if imp.status is ImportStatus.UPLOADED:
        return True
    if imp.status in (ImportStatus.QUEUED, ImportStatus.RUNNING):
        return imp.updated_at < now - LEASE
    return False


def start(session: Session, imp: SubscriberImport) -> bool:
    """Queue the import's job (after commit). False when it cannot start (running, done,
    or its mapping has problems). Commits."""
    if not startable(imp) or import_mapping.check(imp.mapping, imp.columns):
        return False
    imp.status = ImportStatus.QUEUED
    imp.updated_at = utcnow()
    import_id = imp.id
    after_commit(session, lambda: tasks.enqueue(tasks.IMPORT_SUBSCRIBERS, import_id))
    session.commit()
    return True


def _remove(instance_path: Path, imp: SubscriberImport) -> None:
    path_of(instance_path, imp).unlink(missing_ok=True)


def discard(session: Session, instance_path: Path, imp: SubscriberImport) -> bool:
    """Delete the file of an import that was never started. Commits; False if it started."""
    if imp.status is not ImportStatus.UPLOADED:
        return False
    imp.status = ImportStatus.DISCARDED
    session.commit()
    _remove(instance_path, imp)
    return True


def discard_stale(session: Session, instance_path: Path, now: datetime | None = None) -> int:
    """Discard uploads left unstarted for a day (their files hold personal data). Commits;
    safe to run any time."""
    cutoff = (now or utcnow()) - STALE_AFTER
    stale = session.scalars(
        select(SubscriberImport).where(
            SubscriberImport.status == ImportStatus.UPLOADED,
            SubscriberImport.updated_at < cutoff,
        )
    ).all()
    for imp in stale:
        imp.status = ImportStatus.DISCARDED
    session.commit()
    for imp in stale:
        _remove(instance_path, imp)
    return len(stale)


def _claim(session: Session, import_id: int) -> SubscriberImport | None:
    """Mark the import running, if it is queued or its last runner fell silent. Commits."""
    now = utcnow()
    claimed = session.execute(
        update(SubscriberImport)
        .where(
            SubscriberImport.id == import_id,
            or_(
                SubscriberImport.status == ImportStatus.QUEUED,
                (SubscriberImport.status == ImportStatus.RUNNING)
                & (SubscriberImport.updated_at < now - LEASE),
            ),
        )
        .values(status=ImportStatus.RUNNING, started_at=now, updated_at=now, rows_done=0)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    return session.get(SubscriberImport, import_id) if claimed else None


class _Progress:
    """Rows read so far, committed now and then on a session of its own (the importer's
    session commits on its own schedule)."""

    def __init__(self, factory: sessionmaker[Session], import_id: int) -> None:
        self.factory = factory
        self.import_id = import_id
        self.written = 0
        self.at = time.monotonic()

    def __call__(self, rows: int) -> None:
        if rows - self.written < PROGRESS_ROWS and time.monotonic() - self.at < PROGRESS_SECONDS:
            return
        with self.factory() as session:
            session.execute(
                update(SubscriberImport)
                .where(SubscriberImport.id == self.import_id)
                .values(rows_done=rows, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            session.commit()
        self.written, self.at = rows, time.monotonic()


def report_of(report: import_report.ImportReport) -> dict[str, Any]:
    """The importer's report as kept on the row (JSON)."""
    data = asdict(report)
    data["row_errors"] = data.pop("errors")
    return data


def run(factory: sessionmaker[Session], settings: Settings, import_id: int) -> str:
    """The job: import the mapped file, keep the report, delete the file. Returns the final
    status ("skipped" when the import was not queued). Commits as the importer does (per
    chunk and per row without evidence), progress on its own session, the outcome at the end.

    Safe to rerun: only a queued import (or one whose runner fell silent past `LEASE`) is
    run, and the importer itself is safe to rerun (rows done come out unchanged, nobody is
    mailed twice). A file that cannot be read, or an unexpected error, ends the import as
    failed with the reason on the row (rows before the problem stay imported); no retry.
    """
    with factory() as session:
        imp = _claim(session, import_id)
        if imp is None:
            return "skipped"
        path = path_of(settings.instance_path, imp)
        options = importer.ImportOptions(
            form_id=imp.form_id,
            topic=imp.topic,
            actor=f"user:{imp.created_by_id}" if imp.created_by_id else "admin",
            import_id=imp.import_uid,
            locales=settings.locales,
            default_locale=settings.default_locale,
            window_seconds=settings.confirmation_window,
            domain=settings.server_name,
            truncate_ip=settings.truncate_ip,
            chunk_size=CHUNK,
        )
        progress = _Progress(factory, import_id)
        status, report, message = ImportStatus.FAILED, None, None
        try:
            with path.open("rb") as fh:
                data = import_mapping.remap(fh, imp.mapping, imp.delimiter, progress)
                result = importer.run(session, data, options)
            status, report = ImportStatus.FINISHED, report_of(result)
        except FileNotFoundError:
            session.rollback()
            message = "the uploaded file is gone; upload it again"
        except importer.BadFile as exc:
            session.rollback()
            message = f"{exc.field}: {exc.message}"
        except Exception:
            session.rollback()
            log.exception("import %s stopped", import_id)
            message = "the import stopped unexpectedly; rows before the problem were imported"
        finally:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        _finish(session, import_id, status, report, message)
    return status.value


def _finish(
    session: Session,
    import_id: int,
    status: ImportStatus,
    report: dict[str, Any] | None,
    message: str | None,
) -> None:
    imp = session.get(SubscriberImport, import_id, populate_existing=True)
    if imp is None:
        return
    imp.status = status
    imp.report = report
    imp.message = message
    imp.finished_at = utcnow()
    if report is not None:
        imp.rows_done = imp.rows_total = report["rows"]
    session.commit()


def recent(session: Session, page: int, per_page: int) -> tuple[list[SubscriberImport], int]:
    """One page of imports, newest first, and how many there are. Read-only."""
    total = session.scalar(select(func.count()).select_from(SubscriberImport)) or 0
    rows = session.scalars(
        select(SubscriberImport)
        .order_by(SubscriberImport.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(rows), total


def finished(imp: SubscriberImport) -> bool:
    return imp.status in DONE
