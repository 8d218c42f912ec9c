"""Changing topics and withdrawing consent: as easy as giving it (GDPR Art. 7(3))."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailer.consent import ledger
from mailer.consent.models import ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.subscribers import status
from mailer.subscribers.models import Subscriber, SubscriptionStatus


class UnknownSubscriber(LookupError):
    pass


def _subscriber(session: Session, subscriber_id: int) -> Subscriber:
    """The subscriber, locked for this transaction (see `status.lock`)."""
    subscriber = status.lock(session, subscriber_id)
    if subscriber is None:
        session.rollback()
        raise UnknownSubscriber(subscriber_id)
    return subscriber


def withdraw(
    session: Session,
    subscriber_id: int,
    topic_slugs: Collection[str] | None,
    source: ConsentSource,
    visit: ledger.Visit,
    evidence: dict | None = None,
) -> list[str]:
    """Unsubscribe from `topic_slugs` (None: from everything), pending requests included.

    Returns what was withdrawn; empty when nothing was left, and then nothing is written, so
    a repeated one-click POST is harmless. Commits.
    """
    subscriber = _subscriber(session, subscriber_id)
    withdrawn = record_withdrawal(session, subscriber, topic_slugs, source, visit, evidence)
    if not withdrawn:
        session.rollback()
        return []
    session.commit()
    return withdrawn


def record_withdrawal(
    session: Session,
    subscriber: Subscriber,
    topic_slugs: Collection[str] | None,
    source: ConsentSource,
    visit: ledger.Visit | None = None,
    evidence: dict | None = None,
    actor: str | None = None,
) -> list[str]:
    """Unsubscribe the (locked) subscriber and chain the "withdrawn" event, if anything was
    left to withdraw. Flushes; the caller's transaction commits."""
    withdrawn = []
    for sub in subscriber.subscriptions:
        if topic_slugs is not None and sub.topic.slug not in topic_slugs:
            continue
        if sub.status is not SubscriptionStatus.UNSUBSCRIBED:
            sub.status = SubscriptionStatus.UNSUBSCRIBED
            withdrawn.append(sub.topic.slug)
    if not withdrawn:
        return []
    status.refresh(subscriber)
    ledger.record(
        session,
        ConsentEventType.WITHDRAWN,
        subscriber,
        topics=withdrawn,
        source=source,
        visit=visit,
        evidence=evidence,
        actor=actor,
    )
    return withdrawn


@dataclass(frozen=True)
class PreferenceChange:
    withdrawn: list[str]
    subscribed: list[str]


def update(
    session: Session,
    subscriber_id: int,
    wanted: Collection[str],
    visit: ledger.Visit,
    statement: str,
) -> PreferenceChange:
    """Set the subscriber's topics to `wanted`, among the topics they already have a row for.

    Ticking a topic here is a clear affirmative act by the owner of the mailbox (the link came
    from their inbox), so it activates at once. It is recorded as confirmed with the exact
    statement the page showed (`statement`) in the evidence, not a form's consent text, which
    this page does not show. Commits.
    """
    subscriber = _subscriber(session, subscriber_id)
    wanted = set(wanted)
    withdrawn, subscribed = [], []
    now = utcnow()
    for sub in subscriber.subscriptions:
        slug = sub.topic.slug
        if slug in wanted and sub.status is not SubscriptionStatus.ACTIVE:
            sub.status = SubscriptionStatus.ACTIVE
            sub.confirmed_at = now
            subscribed.append(slug)
        elif slug not in wanted and sub.status is not SubscriptionStatus.UNSUBSCRIBED:
            sub.status = SubscriptionStatus.UNSUBSCRIBED
            withdrawn.append(slug)
    if not (withdrawn or subscribed):
        session.rollback()
        return PreferenceChange([], [])
    if subscribed and subscriber.confirmed_at is None:
        subscriber.confirmed_at = now
    status.refresh(subscriber)
    if withdrawn:
        ledger.record(
            session,
            ConsentEventType.WITHDRAWN,
            subscriber,
            withdrawn,
            ConsentSource.PREFERENCES,
            visit,
            evidence={"method": "preference_center"},
        )
    if subscribed:
        ledger.record(
            session,
            ConsentEventType.CONFIRMED,
            subscriber,
            subscribed,
            ConsentSource.PREFERENCES,
            visit,
            evidence={"method": "preference_center", "statement": statement},
        )
    session.commit()
    return PreferenceChange(withdrawn, subscribed)
