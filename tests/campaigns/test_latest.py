"""The latest campaigns' figures for the dashboard, on a known population: people and
machines apart, and the same numbers as the campaign report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mailer.campaigns import latest, reports
from mailer.campaigns.models import CampaignStatus, Delivery, DeliveryStatus
from mailer.tracking.models import EventKind, TrackingEvent
from tests.segments.conftest import World

T = datetime(2025, 6, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(session) -> World:
    world = World(session)
    a, b, c, d = world.campaigns
    for campaign, status, day in ((a, "sent", 10), (b, "sending", 12), (d, "cancelled", 11)):
        campaign.status = CampaignStatus(status)
        campaign.started_at = T.replace(day=day)
    sent = DeliveryStatus.SENT
    world.subscriber(
        "both@x.org", deliveries=[{"campaign": 0, "status": sent, "opened_at": T, "clicked_at": T}]
    )
    machine = world.subscriber(
        "proxy@x.org", deliveries=[{"campaign": 0, "status": sent, "machine_opened_at": T}]
    )
    world.subscriber(
        "twice@x.org",
        deliveries=[{"campaign": 0, "status": sent, "opened_at": T, "machine_opened_at": T}],
    )
    world.subscriber("bounced@x.org", deliveries=[{"campaign": 0, "status": DeliveryStatus.FAILED}])
    world.subscriber("later@x.org", deliveries=[{"campaign": 1, "status": DeliveryStatus.PENDING}])
    delivery = next(dl for dl in a_deliveries(session, a.id) if dl.subscriber_id == machine.id)
    session.add(
        TrackingEvent(
            stream_id="1-1",
            kind=EventKind.CLICK,
            occurred_at=T,
            campaign_id=a.id,
            delivery_id=delivery.id,
            subscriber_id=machine.id,
            machine=True,
            reason="scanner",
        )
    )
    session.commit()
    assert c.started_at is None  # a draft: never on the dashboard
    return world


def a_deliveries(session, campaign_id):
    return session.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id)).all()


def test_the_latest_campaigns_newest_first_with_people_and_machines_apart(world, session):
    a, b, _c, d = world.campaigns
    rows = latest.recent(session, limit=5)
    assert [r.id for r in rows] == [b.id, d.id, a.id]
    first = rows[2]
    assert (first.sent, first.human_opens, first.machine_only_opens) == (3, 2, 1)
    assert (first.clicks, first.machine_clicks) == (1, 1)
    assert first.human_open_rate == pytest.approx(2 / 3)
    assert first.machine_open_rate == pytest.approx(1 / 3)
    assert first.click_rate == pytest.approx(1 / 3) == first.machine_click_rate
    nothing_sent = rows[0]
    assert (nothing_sent.sent, nothing_sent.human_open_rate, nothing_sent.click_rate) == (0, 0, 0)
    assert [r.id for r in latest.recent(session, limit=2)] == [b.id, d.id]


def test_the_figures_are_the_reports(world, session):
    a = world.campaigns[0]
    row = next(r for r in latest.recent(session) if r.id == a.id)
    report = reports.report(session, a)
    assert row.sent == report["deliveries"]["sent"]
    assert row.human_opens == report["opens"]["unique_human"]
    assert row.machine_only_opens == report["opens"]["unique_machine_only"]
    assert row.clicks == report["clicks"]["unique"]
    assert row.human_open_rate == pytest.approx(report["opens"]["human_rate"], abs=1e-4)
    assert row.machine_clicks == report["events"]["machine_clicks"]


def test_no_campaign_started_yet(session):
    World(session)
    assert latest.recent(session) == []
