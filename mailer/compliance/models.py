"""The staff audit log (who looked at or exported whose personal data, and when) and the
background consent audit exports with their expiring files."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.database import Base, StrEnum, UTCDateTime, utcnow


class StaffAccess(Base):
    """One view or export of personal data by staff. Append-only (triggers, migration 0006).

    The person looked at is kept as a keyed HMAC of the address (`subject_hmac`, the same key
    as the consent ledger, so "who looked at this person" is one query) and a masked form for
    reading (`j***@example.com`); never the address itself. Filters are kept as given, minus
    any address. No foreign keys: the record must outlive keys, users and profiles.
    """

    __tablename__ = "staff_audit_log"
    __table_args__ = (
        Index("ix_staff_audit_log_subject", "subject_hmac", "occurred_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Who: an API key (id and its name at the time) or a signed-in staff user.
    api_key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    api_key_name: Mapped[str] = mapped_column(String(200), default="")
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # What: a stable action name and the route (its rule, so no address from a URL lands here).
    action: Mapped[str] = mapped_column(String(64), index=True)
    endpoint: Mapped[str] = mapped_column(String(200))
    subject_hmac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subject_masked: Mapped[str | None] = mapped_column(String(320), nullable=True)
    subscriber_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ExportStatus(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"  # the file is gone (past `expires_at`); the row stays as a record


class ExportJob(Base):
    """One consent audit export requested from the admin pages, written by a background job
    (`mailer.compliance.export_jobs`) into a file under the instance folder.

    The file name is random (`secrets.token_urlsafe`), never derived from the id, and the file
    is served only through the signed-in download view. No foreign key to the user: the record
    outlives accounts, like the staff audit log.
    """

    __tablename__ = "exports"
    __table_args__ = (
        Index("ix_exports_status_expires_at", "status", "expires_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(320), default="")
    # The filter as given (since/until as ISO 8601, types, topic, form_id).
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    format: Mapped[str] = mapped_column(String(8))
    status: Mapped[ExportStatus] = mapped_column(StrEnum(ExportStatus), default=ExportStatus.QUEUED)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    rows_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    file_name: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
