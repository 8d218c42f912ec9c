"""Retention: never-confirmed sign-ups and old tracking events are purged on schedule, in
batches, through the erasure path (the ledger still verifies), and each run is on the staff
audit log with actor "retention"."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from mailer import tasks
from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.compliance import retention
from mailer.compliance.models import StaffAccess
from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.delivery.models import Suppression
from mailer.pseudonyms import keyed
from mailer.subscribers.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Topic,
)
from mailer.tracking.models import EventKind, TrackingEvent
from tests.compliance import history
from tests.compliance.history import EMAIL
from tests.factories import make_form


def old_signup(session, email: str, days: int) -> int:
    """A sign-up made `days` ago and never confirmed: the profile, its pending subscription
    and its "requested" event, each dated back (the event chained by the ledger's own
    append, as the sign-up page does)."""
    topic = session.scalar(select(Topic).where(Topic.slug == "news"))
    then = utcnow() - timedelta(days=days)
    subscriber = Subscriber(
        email=email,
        name="Never Confirmed",
        status=SubscriberStatus.PENDING,
        created_at=then,
        confirmation_sent_at=then,
    )
    subscriber.subscriptions.append(
        Subscription(topic_id=topic.id, status=SubscriptionStatus.PENDING, created_at=then)
    )
    session.add(subscriber)
    session.flush()
    chain.append(
        session,
        ConsentEvent(
            type=ConsentEventType.REQUESTED,
            subscriber_id=subscriber.id,
            subject_hmac=keyed(session, email),
            topics=["news"],
            lawful_basis="consent",
            source=ConsentSource.FORM,
            ip_hmac=keyed(session, "192.0.2.44"),
            user_agent_hmac=keyed(session, "OldBrowser/1"),
            evidence={},
            occurred_at=then,
            email=email,
            ip="192.0.2.44",
            user_agent="OldBrowser/1",
        ),
    )
    session.commit()
    return subscriber.id


def _emails(session) -> set[str]:
    session.expire_all()
    return set(session.scalars(select(Subscriber.email)))


def _logged(session) -> list[tuple[str, str, dict]]:
    rows = session.scalars(
        select(StaffAccess).where(StaffAccess.api_key_name == "retention").order_by(StaffAccess.id)
    )
    return [(r.action, r.endpoint, r.details) for r in rows]


def test_the_daily_job_purges_what_is_past_retention_and_nothing_else(
    app, client, session, work, inbox
):
    _, secret = create_api_key(session, Role.COMPLIANCE, "DPO desk")
    story = history.build(app, client, session, work, inbox, {"Authorization": f"Bearer {secret}"})
    stale = old_signup(session, "stale@example.com", days=31)
    old_signup(session, "fresh@example.com", days=29)
    # The confirmed person's open is 14 months old; their click is recent.
    session.execute(
        update(TrackingEvent)
        .where(TrackingEvent.kind == EventKind.OPEN)
        .values(occurred_at=utcnow() - timedelta(days=426))
    )
    session.commit()

    with app.app_context():
        tasks.enqueue(tasks.APPLY_RETENTION)
    work()

    assert _emails(session) == {EMAIL, "fresh@example.com"}
    kinds = list(session.scalars(select(TrackingEvent.kind)))
    assert kinds == [EventKind.CLICK]
    # The purged sign-up's proof: pseudonymised, with an "erased" event saying why.
    events = session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.subject_hmac == keyed(session, "stale@example.com"))
        .order_by(ConsentEvent.seq)
    ).all()
    assert [e.type for e in events] == [ConsentEventType.REQUESTED, ConsentEventType.ERASED]
    assert all(e.email is None and e.ip is None and e.user_agent is None for e in events)
    assert events[0].ip_hmac == keyed(session, "192.0.2.44")  # the proof is still there
    assert events[1].actor == "retention" and events[1].subscriber_id == stale
    assert events[1].evidence["request"] == "retention"
    report = chain.verify(session)
    assert report.ok, report.problem
    # Never consented: no erasure entry to flag a later import.
    assert session.scalar(select(func.count()).select_from(Suppression)) == 0
    assert _logged(session) == [
        ("retention.pending_signups", "cron retention", {"purged": 1, "older_than_days": 30}),
        ("retention.tracking_events", "cron retention", {"purged": 1, "older_than_days": 395}),
    ]
    # The confirmed person's profile and deliveries keep what the flush folded in.
    profile = session.get(Subscriber, story.subscriber_id)
    assert profile.open_count == 1 and profile.click_count == 1

    with app.app_context():
        tasks.enqueue(tasks.APPLY_RETENTION)
    work()
    assert _emails(session) == {EMAIL, "fresh@example.com"}
    assert [d["purged"] for _, _, d in _logged(session)] == [1, 1, 0, 0]


def test_a_sign_up_confirmed_or_asked_again_in_time_is_kept(client, session, work, inbox):
    make_form(session)
    history.sign_up(client, work, "asked-again@example.com", "Asked Again")
    history.sign_up(client, work, "confirmed@example.com", "Con Firmed")
    history.confirm(client, work, inbox, "confirmed@example.com")
    history.sign_up(client, work, "left@example.com", "Left Pending")
    later = utcnow() + timedelta(days=31)
    # The first asked again (a confirmation sent) 5 days before "now".
    session.execute(
        update(Subscriber)
        .where(Subscriber.email == "asked-again@example.com")
        .values(confirmation_sent_at=later - timedelta(days=5))
    )
    session.commit()

    assert retention.purge_pending(session, 30, now=later) == 1
    assert _emails(session) == {"asked-again@example.com", "confirmed@example.com"}
    assert chain.verify(session).ok
    assert retention.purge_pending(session, 30, now=utcnow() + timedelta(days=29)) == 0


def test_purges_go_in_batches_until_nothing_is_left(session):
    make_form(session)
    for n in range(5):
        old_signup(session, f"old{n}@example.com", days=60)
    assert retention.purge_pending(session, 30, batch=2) == 5
    assert _emails(session) == set()
    assert chain.verify(session).ok
    assert _logged(session) == [
        ("retention.pending_signups", "cron retention", {"purged": 5, "older_than_days": 30})
    ]


def test_old_tracking_events_go_in_batches(app, client, session, work, inbox):
    _, secret = create_api_key(session, Role.COMPLIANCE, "DPO desk")
    history.build(app, client, session, work, inbox, {"Authorization": f"Bearer {secret}"})
    (open_event,) = session.scalars(
        select(TrackingEvent).where(TrackingEvent.kind == EventKind.OPEN)
    ).all()
    old = utcnow() - timedelta(days=400)
    for n in range(4):  # more old opens than one batch takes
        session.add(
            TrackingEvent(
                stream_id=f"0-{n + 100}",
                kind=EventKind.OPEN,
                occurred_at=old,
                campaign_id=open_event.campaign_id,
                delivery_id=open_event.delivery_id,
                subscriber_id=open_event.subscriber_id,
                user_agent="Mozilla/5.0",
            )
        )
    session.commit()
    assert retention.purge_tracking(session, 395, batch=3) == 4
    assert session.scalar(select(func.count()).select_from(TrackingEvent)) == 2
    assert retention.purge_tracking(session, 395, batch=3) == 0
