"""A subscriber's overall status follows from their per-topic subscriptions."""

from __future__ import annotations

from mailer.database import utcnow
from mailer.subscribers.models import Subscriber, SubscriberStatus, SubscriptionStatus


def refresh(subscriber: Subscriber) -> None:
    statuses = {s.status for s in subscriber.subscriptions}
    if SubscriptionStatus.ACTIVE in statuses:
        subscriber.status = SubscriberStatus.ACTIVE
        subscriber.unsubscribed_at = None
    elif subscriber.confirmed_at is not None:
        if subscriber.status is not SubscriberStatus.UNSUBSCRIBED:
            subscriber.unsubscribed_at = utcnow()
        subscriber.status = SubscriberStatus.UNSUBSCRIBED
    else:
        subscriber.status = SubscriberStatus.PENDING
