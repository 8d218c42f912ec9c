"""Rows for mail we send one at a time (confirmations, notices) and addresses we must not mail."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.database import Base, StrEnum, UTCDateTime, utcnow


class MessageKind(enum.Enum):
    CONFIRMATION = "confirmation"
    ALREADY_SUBSCRIBED = "already_subscribed"
    WELCOME = "welcome"


class MessageStatus(enum.Enum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a worker; SMTP under way
    SENT = "sent"
    FAILED = "failed"  # permanent: the address was refused
    SKIPPED = "skipped"  # suppressed or nothing left to confirm


class OutboundMessage(Base):
    """One system email. The row exists before the job runs, so a rerun job sees it was sent."""

    __tablename__ = "outbound_messages"
    __table_args__ = {"sqlite_autoincrement": True}  # ids travel in signed links

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[MessageKind] = mapped_column(StrEnum(MessageKind))
    status: Mapped[MessageStatus] = mapped_column(
        StrEnum(MessageStatus), default=MessageStatus.PENDING, index=True
    )
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    # The consent event this message belongs to (the request a confirmation confirms).
    consent_event_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    form_id: Mapped[int | None] = mapped_column(
        ForeignKey("forms.id", ondelete="SET NULL"), nullable=True
    )
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Deferred: not before this time (one email per address per window).
    send_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class SuppressionReason(enum.Enum):
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    # Erased on request: blocks re-import without fresh consent, never a fresh sign-up.
    ERASED = "erased"


# Reasons that stop mail to the address.
BLOCKING = (SuppressionReason.HARD_BOUNCE, SuppressionReason.COMPLAINT, SuppressionReason.MANUAL)


class Suppression(Base):
    """Addresses we must not mail, kept only as keyed HMACs of the normalised address."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hmac: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(StrEnum(SuppressionReason))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
