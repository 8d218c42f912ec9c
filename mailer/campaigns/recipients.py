"""Who a campaign goes to, decided once: one INSERT ... SELECT into per-recipient deliveries.

Audience = the segment's members (everyone, without a segment) ∩ active subscription to the
campaign's topic ∩ active subscriber. Suppressions are kept as HMACs only, so they cannot be
joined in SQL; the sender checks them per batch, which also catches a bounce or complaint that
arrives while the campaign is going out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, literal, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, Delivery, DeliveryStatus
from mailer.subscribers.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)


def audience(campaign: Campaign, now: datetime) -> Select[tuple[int]]:
    query = (
        select(Subscriber.id)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(
            Subscription.topic_id == campaign.topic_id,
            Subscription.status == SubscriptionStatus.ACTIVE,
            Subscriber.status == SubscriberStatus.ACTIVE,
        )
    )
    if campaign.segment is not None:
        from mailer.segments.compiler import member_ids

        query = query.where(Subscriber.id.in_(member_ids(campaign.segment.rules, now)))
    return query


def resolve(session: Session, campaign: Campaign, now: datetime) -> int:
    """Create the delivery rows and stamp `resolved_at`. Rerunning adds nobody twice (unique
    campaign+subscriber, conflicts ignored). Flushes; the caller commits."""
    members = audience(campaign, now)
    # `WHERE true`: SQLite needs it to parse INSERT ... SELECT ... ON CONFLICT.
    rows = select(
        literal(campaign.id),
        members.subquery().c.id,
        literal(DeliveryStatus.PENDING.value),
        literal(0),
    ).where(true())
    columns = ["campaign_id", "subscriber_id", "status", "attempts"]
    dialect = session.get_bind().dialect.name
    insert_ = (postgresql if dialect == "postgresql" else sqlite).insert(Delivery)
    statement = insert_.from_select(columns, rows).on_conflict_do_nothing()
    session.execute(statement)
    count = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.campaign_id == campaign.id)
    )
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id)
        .values(recipient_count=count, resolved_at=now)
    )
    return int(count or 0)
