"""Finding subscribers for staff: by part of an address, status and topic, a page at a time.

Filtered and paged in SQL. Addresses are stored lower case (`schemas.normalise_email`), so
the search text is lower-cased and matched as a substring with LIKE wildcards escaped: "%"
and "_" typed by a person mean themselves. A substring match cannot use the unique index on
`email`; it scans, which is what a search box over a list of this size can afford.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from mailer.subscribers.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Topic,
)

MAX_TEXT = 254


@dataclass(frozen=True)
class Query:
    text: str = ""  # part of an address
    status: SubscriberStatus | None = None  # with a topic: the status on that topic
    topic_id: int | None = None


def topic_id(session: Session, slug: str) -> int | None:
    return session.scalar(select(Topic.id).where(Topic.slug == slug))


def search(
    session: Session, query: Query, page: int, per_page: int
) -> tuple[list[Subscriber], int]:
    """One page of matching subscribers, newest first, with their subscriptions and topics
    loaded, and how many match in all. Read-only."""
    stmt = select(Subscriber)
    text = query.text.strip().lower()[:MAX_TEXT]
    if text:
        stmt = stmt.where(Subscriber.email.contains(text, autoescape=True))
    if query.topic_id is not None:
        sub = select(Subscription.subscriber_id).where(Subscription.topic_id == query.topic_id)
        if query.status is not None:
            sub = sub.where(Subscription.status == SubscriptionStatus(query.status.value))
        stmt = stmt.where(Subscriber.id.in_(sub))
    elif query.status is not None:
        stmt = stmt.where(Subscriber.status == query.status)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.options(selectinload(Subscriber.subscriptions).selectinload(Subscription.topic))
        .order_by(Subscriber.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(rows), total
