"""The consent ledger's rows: append-only and hash-chained.

The database refuses UPDATE and DELETE (triggers, migration 0001) with one exception: the
erasure path may blank the clear personal data (`email`, `ip`, `user_agent`) and nothing else.
The chain covers keyed HMACs of those values, never the values, so blanking them leaves every
row hash intact and `mailer consent verify` still passes after an erasure.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.database import Base, StrEnum, UTCDateTime, utcnow


class ConsentEventType(enum.Enum):
    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    WITHDRAWN = "withdrawn"
    ERASED = "erased"  # Art. 17: personal data removed; this row and the HMACs remain
    IMPORTED = "imported"  # consent given elsewhere (paper, old system); evidence in the row


class ConsentSource(enum.Enum):
    FORM = "form"
    PREFERENCES = "preferences"
    UNSUBSCRIBE = "unsubscribe"
    API = "api"
    IMPORT = "import"
    ADMIN = "admin"
    SYSTEM = "system"  # scheduled policy with no person acting (retention)


# The only columns the erasure path may blank; everything else is frozen at insert.
ERASABLE = ("email", "ip", "user_agent")


class ConsentEvent(Base):
    __tablename__ = "consent_events"
    __table_args__ = (
        Index("ix_consent_events_subscriber", "subscriber_id", "occurred_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Position in the chain: contiguous from 1, assigned under the ledger head's lock.
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    type: Mapped[ConsentEventType] = mapped_column(StrEnum(ConsentEventType))
    # No foreign key on purpose: the proof outlives the profile (GDPR Art. 17(3)(b), (e)).
    subscriber_id: Mapped[int] = mapped_column(Integer)
    subject_hmac: Mapped[str] = mapped_column(String(64), index=True)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    lawful_basis: Mapped[str] = mapped_column(String(32), default="consent")
    form_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    form_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    consent_text_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    source: Mapped[ConsentSource] = mapped_column(StrEnum(ConsentSource))
    ip_hmac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent_hmac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str | None] = mapped_column(String(320), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))
    # Clear personal data, outside the chain: blanked by erasure.
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The sign-up intake's stream entry this event was written from (outside the chain): a
    # drain that dies between its commit and its acknowledgement must not write it twice.
    intake_id: Mapped[str | None] = mapped_column(
        String(64), nullable=True, unique=True, index=True
    )


class LedgerHead(Base):
    """One row: the last sequence number and hash. Appends lock it, so the chain is a line."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class LedgerAnchor(Base):
    """The head hash at a moment, to print or send elsewhere: rewriting the chain after it shows."""

    __tablename__ = "ledger_anchors"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
