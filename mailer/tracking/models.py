"""Tracking events (opens, clicks) and bounces (hard, soft, complaints) as evidence rows.

Neither table holds an IP address or an email address: an event keeps what classified it
(`reason`) and a clipped user agent; a bounce keeps the address only as a keyed HMAC, the
same one the suppression list uses.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.database import Base, StrEnum, UTCDateTime, utcnow

USER_AGENT_MAX = 200
REASON_MAX = 64


class EventKind(enum.Enum):
    OPEN = "open"
    CLICK = "click"


class TrackingEvent(Base):
    """One pixel hit or click, flushed from the Redis stream.

    `stream_id` is the Redis stream entry id: unique, so a batch written twice (a worker
    died after the commit but before the acknowledgement) is written once.
    """

    __tablename__ = "tracking_events"
    __table_args__ = (
        Index("ix_tracking_events_campaign_kind", "campaign_id", "kind"),
        Index("ix_tracking_events_delivery", "delivery_id"),
        Index("ix_tracking_events_subscriber", "subscriber_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[EventKind] = mapped_column(StrEnum(EventKind))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    # CASCADE: behaviour is personal data; it goes with the profile on erasure.
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    # A proxy, scanner or prefetch rather than a person; `reason` says which rule said so.
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(REASON_MAX), nullable=True)
    link_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BounceKind(enum.Enum):
    HARD = "hard"  # permanent: the address does not take mail; suppressed
    SOFT = "soft"  # temporary: full mailbox, delay, policy block; counted, not suppressed
    COMPLAINT = "complaint"  # "this is spam": suppressed


class BounceSource(enum.Enum):
    SMTP = "smtp"  # refused during our own SMTP session
    WEBHOOK = "webhook"  # POST /webhooks/bounces (a relay or ESP telling us)
    DSN = "dsn"  # RFC 3464 delivery status notification in the bounce mailbox
    ARF = "arf"  # RFC 5965 feedback report (complaint loop)


class Bounce(Base):
    """Evidence for a bounce or complaint, and for the suppression it may have caused."""

    __tablename__ = "bounces"
    __table_args__ = (
        Index("ix_bounces_campaign_kind", "campaign_id", "kind"),
        Index("ix_bounces_delivery", "delivery_id"),
        Index("ix_bounces_email_hmac", "email_hmac"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # One row per delivery and kind (or per address, status and time when no delivery is
    # known): the same report fed in twice is recorded and counted once.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[BounceKind] = mapped_column(StrEnum(BounceKind))
    source: Mapped[BounceSource] = mapped_column(StrEnum(BounceSource))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), nullable=True
    )
    email_hmac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # RFC 3463 enhanced status ("5.1.1") or the SMTP reply code ("550").
    status: Mapped[str] = mapped_column(String(16), default="")
    # A short diagnostic with addresses scrubbed out.
    diagnostic: Mapped[str] = mapped_column(String(500), default="")
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False)
