"""The staff audit log: who looked at or exported whose personal data, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.database import Base, UTCDateTime, utcnow


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
