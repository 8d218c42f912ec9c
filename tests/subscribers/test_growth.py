"""Growth figures for the dashboard against a known population in the real ledger (the hash
chain appends them), on SQLite and PostgreSQL: people per UTC day, form confirmation rates
for the period, headline counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, text

from mailer.consent import chain
from mailer.consent.ledger import Visit
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.delivery import suppressions
from mailer.delivery.models import OutboundMessage, SuppressionReason
from mailer.subscribers import confirmation, growth
from mailer.subscribers.models import Form, Subscriber, SubscriberStatus
from tests import signups
from tests.factories import make_form

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
R, C, W, IMP = (
    ConsentEventType.REQUESTED,
    ConsentEventType.CONFIRMED,
    ConsentEventType.WITHDRAWN,
    ConsentEventType.IMPORTED,
)


def at(day: str, clock: str = "12:00:00.000000") -> datetime:
    return datetime.fromisoformat(f"2025-{day}T{clock}+00:00")


@pytest.fixture
def population(session):
    """Who did what when (person number, event, form, time)."""
    home = make_form(session, "home", topics=("news",))
    shop = make_form(session, "shop", topics=("deals",))
    events = [
        (1, R, home, at("06-15", "01:00:00")),
        (1, C, home, at("06-15", "02:00:00")),
        (2, R, home, at("06-14", "23:59:59.999999")),  # the last instant of the 14th
        (2, C, home, at("06-15", "00:00:00")),  # the first instant of the 15th
        (3, R, home, at("06-14", "10:00:00")),
        (3, R, home, at("06-14", "11:00:00")),  # asked twice on one day: one person
        (3, C, None, at("06-14", "12:00:00")),  # the preference centre: no form
        (4, R, shop, at("06-10")),
        (4, C, shop, at("06-10")),
        (4, W, None, at("06-12")),
        (5, IMP, None, at("06-12")),  # imported with proof: new and confirmed
        (6, R, shop, at("05-16", "23:00:00")),  # the day before the 30 days
        (6, C, shop, at("05-17", "00:30:00")),  # the first of the 30 days
        (7, R, home, at("06-16", "00:00:00")),  # tomorrow: not yet
        (8, R, home, at("03-20")),  # within 90 days, not 30
        (8, C, home, at("03-20")),
        (8, W, None, at("06-13")),
        (1, W, None, at("06-15", "08:00:00")),
        (1, W, None, at("06-15", "09:00:00")),  # a second topic, the same day: one person
    ]
    for person, kind, form, when in sorted(events, key=lambda e: e[3]):
        version = form.current_version if form else None
        chain.append(
            session,
            ConsentEvent(
                type=kind,
                subscriber_id=person,
                email=f"person{person}@example.org",
                topics=["news"],
                form_id=version.form_id if version else None,
                form_version_id=version.id if version else None,
                source=ConsentSource.FORM,
                occurred_at=when,
            ),
        )
    session.commit()
    return home, shop


def series(values: list[int], days: list[date]) -> dict[str, int]:
    return {d.isoformat()[5:]: v for d, v in zip(days, values, strict=True) if v}


def test_people_per_utc_day_from_the_ledger(population, session, db_kind):
    if db_kind == "postgresql":  # the server's own zone must not move the days
        session.execute(text("SET LOCAL TIME ZONE 'Pacific/Kiritimati'"))
    span = growth.period(NOW, 30)
    assert (span.first, span.last) == (date(2025, 5, 17), date(2025, 6, 15))
    daily = growth.daily(session, span)
    assert len(daily.days) == 30 and daily.days[0] == span.first
    assert series(daily.new, daily.days) == {"06-10": 1, "06-12": 1, "06-14": 2, "06-15": 1}
    assert series(daily.confirmed, daily.days) == {
        "05-17": 1,
        "06-10": 1,
        "06-12": 1,
        "06-14": 1,
        "06-15": 2,
    }
    assert series(daily.unsubscribed, daily.days) == {"06-12": 1, "06-13": 1, "06-15": 1}


def test_each_forms_confirmation_rate_over_the_period(population, session):
    home, _shop = population
    rates = growth.form_rates(session, growth.period(NOW, 30))
    assert [(r.slug, r.requested, r.confirmed) for r in rates] == [("home", 3, 2), ("shop", 1, 1)]
    assert rates[0].rate == pytest.approx(2 / 3) and rates[0].form_id == home.id
    assert rates[0].name == "Home sign-up"
    longer = growth.form_rates(session, growth.period(NOW, 90))
    assert [(r.slug, r.requested, r.confirmed) for r in longer] == [("home", 4, 3), ("shop", 2, 2)]
    assert growth.form_rates(session, growth.period(NOW - timedelta(days=400), 30)) == []


def test_a_real_sign_up_and_confirmation_count_today(client, session):
    make_form(session)
    client.post(
        "/subscribe/news",
        json={"email": "ann@example.com", "consent": True},
        headers={"Origin": "https://shop.example"},
    )
    signups.drain(client.application)
    message_id = session.scalar(select(OutboundMessage.id))
    confirmation.confirm(session, message_id, Visit(), "localhost")
    span = growth.period(utcnow(), 30)
    daily = growth.daily(session, span)
    assert (daily.new[-1], daily.confirmed[-1], daily.unsubscribed[-1]) == (1, 1, 0)
    form = session.scalar(select(Form))
    assert [(r.form_id, r.requested, r.confirmed) for r in growth.form_rates(session, span)] == [
        (form.id, 1, 1)
    ]


def test_headline_figures(session):
    statuses = [SubscriberStatus.ACTIVE] * 3 + [SubscriberStatus.PENDING] * 2
    statuses.append(SubscriberStatus.UNSUBSCRIBED)
    for i, status in enumerate(statuses):
        session.add(Subscriber(email=f"p{i}@example.org", status=status, attributes={}))
    suppressions.add(session, "hard@example.org", SuppressionReason.HARD_BOUNCE)
    suppressions.add(session, "spam@example.org", SuppressionReason.COMPLAINT)
    suppressions.add(session, "gone@example.org", SuppressionReason.ERASED)  # blocks no mail
    session.commit()
    assert growth.headline(session) == growth.Headline(
        active=3, pending=2, unsubscribed=1, suppressed=2
    )
