"""A CSV import started from the admin pages: the uploaded file's columns, how they map onto
the importer's columns, the job's progress and, once done, its report.

The file itself lives under the instance folder (`imports/<file_token>.csv`, mode 600) only
until the import has run or is discarded; the row stays as the record of who imported what.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.database import Base, StrEnum, UTCDateTime, utcnow


class ImportStatus(enum.Enum):
    UPLOADED = "uploaded"  # file stored, columns being mapped
    QUEUED = "queued"  # the job is on the queue
    RUNNING = "running"
    FINISHED = "finished"  # `report` holds the outcome; the file is gone
    FAILED = "failed"  # `message` says why; the file is gone
    DISCARDED = "discarded"  # never run; the file is gone


DONE = (ImportStatus.FINISHED, ImportStatus.FAILED, ImportStatus.DISCARDED)


class SubscriberImport(Base):
    __tablename__ = "subscriber_imports"
    # Ids appear in links: SQLite must never reuse one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    status: Mapped[ImportStatus] = mapped_column(
        StrEnum(ImportStatus), default=ImportStatus.UPLOADED
    )
    # The name the browser sent, for people to recognise the file; never used as a path.
    filename: Mapped[str] = mapped_column(String(200), default="")
    # Random; the file is `imports/<file_token>.csv` under the instance folder.
    file_token: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    # The file's cell separator (",", ";" or a tab): spreadsheets in many locales use ";".
    delimiter: Mapped[str] = mapped_column(String(8), default=",")
    # The header as uploaded, and per column what it becomes ("" ignores it; see
    # `mailer.subscribers.import_mapping`).
    columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    mapping: Mapped[list[str]] = mapped_column(JSON, default=list)
    form_id: Mapped[int | None] = mapped_column(
        ForeignKey("forms.id", ondelete="SET NULL"), nullable=True
    )
    topic: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The importer's id, written into the ledger evidence of every row it imports.
    import_uid: Mapped[str] = mapped_column(String(32))
    # Progress: data rows read so far, of about `rows_total` (counted from the line breaks
    # at upload; exact once finished).
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
