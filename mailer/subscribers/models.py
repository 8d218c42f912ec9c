"""Who may be mailed about what: subscribers, topics, their per-topic subscriptions, and forms."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mailer.database import Base, StrEnum, UTCDateTime, utcnow


class SubscriberStatus(enum.Enum):
    PENDING = "pending"  # asked, never confirmed anything
    ACTIVE = "active"  # at least one confirmed, active subscription
    UNSUBSCRIBED = "unsubscribed"  # had consent, withdrew all of it


class SubscriptionStatus(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"


form_topics = Table(
    "form_topics",
    Base.metadata,
    Column("form_id", ForeignKey("forms.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Form(Base):
    __tablename__ = "forms"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # None: pick from the visitor's Accept-Language.
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)
    ask_name: Mapped[bool] = mapped_column(Boolean, default=False)
    welcome_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    welcome_gmail_tip: Mapped[bool] = mapped_column(Boolean, default=True)
    # Origins allowed to POST without our CSRF token (embed snippet on another site, fetch()).
    allowed_origins: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    topics: Mapped[list[Topic]] = relationship(secondary=form_topics, order_by=Topic.id)
    versions: Mapped[list[FormVersion]] = relationship(
        back_populates="form", order_by="FormVersion.version"
    )

    @property
    def current_version(self) -> FormVersion:
        return self.versions[-1]


class FormVersion(Base):
    """The consent text exactly as shown; never edited, a change is a new version."""

    __tablename__ = "form_versions"
    __table_args__ = (UniqueConstraint("form_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # RESTRICT: a form whose text was ever shown cannot be deleted (the ledger points at it).
    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id", ondelete="RESTRICT"))
    version: Mapped[int] = mapped_column(Integer)
    consent_text: Mapped[str] = mapped_column(Text)
    consent_text_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    form: Mapped[Form] = relationship(back_populates="versions")

    @staticmethod
    def digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (
        # Segment conditions on these columns are range scans (migration 0003).
        Index("ix_subscribers_created_at", "created_at"),
        Index("ix_subscribers_confirmed_at", "confirmed_at"),
        Index("ix_subscribers_last_open_at", "last_open_at"),
        Index("ix_subscribers_last_click_at", "last_click_at"),
        Index("ix_subscribers_source_form_id", "source_form_id"),
        # Signed links carry this id: SQLite must never hand it to someone else after a deletion.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str] = mapped_column(String(8), default="en")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[SubscriberStatus] = mapped_column(
        StrEnum(SubscriberStatus), default=SubscriberStatus.PENDING, index=True
    )
    source_form_id: Mapped[int | None] = mapped_column(
        ForeignKey("forms.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When we last mailed a confirmation: one per address per window, against list bombing.
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Engagement, folded in by the tracking workers.
    last_open_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_click_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    open_count: Mapped[int] = mapped_column(Integer, default=0)
    machine_open_count: Mapped[int] = mapped_column(Integer, default=0)
    click_count: Mapped[int] = mapped_column(Integer, default=0)
    bounce_count: Mapped[int] = mapped_column(Integer, default=0)
    # The person's choice: no pixel, no rewritten links in anything we send them.
    tracking_enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber",
        order_by="Subscription.topic_id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "topic_id"),
        Index("ix_subscriptions_topic_status", "topic_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    status: Mapped[SubscriptionStatus] = mapped_column(
        StrEnum(SubscriptionStatus), default=SubscriptionStatus.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    topic: Mapped[Topic] = relationship()
