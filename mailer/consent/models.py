"""The consent ledger's rows. Append-only: the database refuses UPDATE and DELETE."""

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


class ConsentSource(enum.Enum):
    FORM = "form"
    PREFERENCES = "preferences"
    UNSUBSCRIBE = "unsubscribe"
    API = "api"
    IMPORT = "import"
    ADMIN = "admin"


class ConsentEvent(Base):
    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_subscriber", "subscriber_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    type: Mapped[ConsentEventType] = mapped_column(StrEnum(ConsentEventType))
    # No foreign key on purpose: the proof outlives the profile (GDPR Art. 17(3)(b), (e)).
    subscriber_id: Mapped[int] = mapped_column(Integer)
    email: Mapped[str] = mapped_column(String(320))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    lawful_basis: Mapped[str] = mapped_column(String(32), default="consent")
    form_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    form_version_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    consent_text_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    source: Mapped[ConsentSource] = mapped_column(StrEnum(ConsentSource))
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(Text, nullable=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str | None] = mapped_column(String(320), nullable=True)
