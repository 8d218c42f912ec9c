"""A subscriber's overall status, and the per-subscriber lock every change takes first."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from mailer.database import utcnow
from mailer.subscribers.models import Subscriber, SubscriberStatus, SubscriptionStatus


def lock(session: Session, subscriber_id: int) -> Subscriber | None:
    """Lock the subscriber for this transaction and load their subscriptions fresh.

    A no-op UPDATE takes the row lock on PostgreSQL and the write lock on SQLite, so two
    confirmations (or one-click POSTs) of the same person at once queue up: the second sees
    what the first committed and writes nothing twice.
    """
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(id=Subscriber.id)
        .execution_options(synchronize_session=False)
    )
    return session.scalars(
        select(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .options(selectinload(Subscriber.subscriptions))
        .execution_options(populate_existing=True)
    ).first()


def refresh(subscriber: Subscriber) -> None:
    statuses = {s.status for s in subscriber.subscriptions}
    if SubscriptionStatus.ACTIVE in statuses:
        subscriber.status = SubscriberStatus.ACTIVE
        subscriber.unsubscribed_at = None
        return
    if subscriber.confirmed_at is None and SubscriptionStatus.PENDING in statuses:
        subscriber.status = SubscriberStatus.PENDING
        return
    # Had consent and withdrew it, or withdrew the only request before confirming.
    if subscriber.status is not SubscriberStatus.UNSUBSCRIBED:
        subscriber.unsubscribed_at = utcnow()
    subscriber.status = SubscriberStatus.UNSUBSCRIBED
