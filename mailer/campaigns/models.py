"""Templates, campaigns and per-recipient deliveries.

A delivery row is the unit of "exactly once": it exists before anything is sent, a sender
claims it, marks it `sending` (committed) just before SMTP and `sent` just after, so a crash
leaves at most the one message that was on the wire in doubt (`unknown`, never resent).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.database import Base, StrEnum, UTCDateTime, utcnow
from mailer.segments.models import Segment
from mailer.subscribers.models import Topic


class Template(Base):
    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    mjml: Mapped[str] = mapped_column(Text)
    # Authored text part; None: generated from the HTML.
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CampaignStatus(enum.Enum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"  # every delivery reached a final state
    CANCELLED = "cancelled"


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = {"sqlite_autoincrement": True}  # ids travel in signed links

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(500))
    preheader: Mapped[str] = mapped_column(String(500), default="")
    from_name: Mapped[str] = mapped_column(String(200))
    from_email: Mapped[str] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320), nullable=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="RESTRICT"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="RESTRICT"))
    # None: everyone with an active subscription to the topic.
    segment_id: Mapped[int | None] = mapped_column(
        ForeignKey("segments.id", ondelete="RESTRICT"), nullable=True
    )
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True)
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[CampaignStatus] = mapped_column(
        StrEnum(CampaignStatus), default=CampaignStatus.DRAFT, index=True
    )
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What was sent, frozen when sending starts: later template edits do not change it.
    frozen_subject: Mapped[str | None] = mapped_column(String(500), nullable=True)
    frozen_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    frozen_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    recipient_count: Mapped[int] = mapped_column(Integer, default=0)
    # Set once the recipients were resolved into deliveries (exactly once per campaign).
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    template: Mapped[Template] = relationship()
    topic: Mapped[Topic] = relationship()
    segment: Mapped[Segment | None] = relationship()


class DeliveryStatus(enum.Enum):
    PENDING = "pending"  # to send (claimed or not)
    SENDING = "sending"  # on the wire: committed just before SMTP
    SENT = "sent"
    FAILED = "failed"  # permanent refusal (5xx), also a bounce
    SKIPPED = "skipped"  # see skip_reason
    UNKNOWN = "unknown"  # a sender died mid-SMTP: maybe delivered, never resent


FINAL_STATUSES = (
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.UNKNOWN,
)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id"),
        Index("ix_deliveries_campaign_status", "campaign_id", "status"),
        Index("ix_deliveries_subscriber", "subscriber_id"),
        {"sqlite_autoincrement": True},  # ids travel in signed links
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # SET NULL on erasure: the row stays for the campaign's counts, the person does not.
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), nullable=True
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        StrEnum(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    # Which sender holds the row (a fencing token), and since when.
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Temporary failure: not before this time.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    skip_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Engagement with this message, folded in by the tracking flush (human opens only).
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    machine_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
