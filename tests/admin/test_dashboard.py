"""The dashboard through the test client: every staff role sees the list's growth, each form's
confirmation rate and the latest campaigns for a known population; the period is 30 or 90
days and nothing else."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from mailer.accounts.models import Role
from mailer.campaigns.models import CampaignStatus, DeliveryStatus
from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.subscribers.models import SubscriberStatus
from tests.factories import make_form
from tests.segments.conftest import World

R, C, W = ConsentEventType.REQUESTED, ConsentEventType.CONFIRMED, ConsentEventType.WITHDRAWN


def make_population(session) -> World:
    """Four people who asked through the form `signup` (one 40 days ago), three confirmed, one
    withdrew today; three subscribers (two active) and a campaign sent to them an hour ago."""
    home = make_form(session, "signup", topics=("letters",))
    now = utcnow()
    today = now.replace(hour=0, minute=0, second=1, microsecond=0)
    events = [
        (1, R, home, today - timedelta(days=40)),  # only in the 90 days
        (1, C, home, today - timedelta(days=40)),
        (2, R, home, today - timedelta(days=2)),
        (2, C, home, today - timedelta(days=1)),
        (3, R, home, today - timedelta(days=2)),
        (4, R, home, today),
        (4, C, home, today),
        (1, W, None, today),
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
                occurred_at=min(when, now),
            ),
        )
    session.commit()
    world = World(session)
    statuses = {"a@x.org": "active", "b@x.org": "active", "c@x.org": "pending"}
    for email, status in statuses.items():
        world.subscriber(
            email,
            status=SubscriberStatus(status),
            deliveries=[
                {"campaign": 0, "status": DeliveryStatus.SENT, "opened_at": now}
                if email == "a@x.org"
                else {"campaign": 0, "status": DeliveryStatus.SENT, "machine_opened_at": now}
            ],
        )
    world.campaigns[0].status = CampaignStatus.SENT
    world.campaigns[0].started_at = now - timedelta(hours=1)
    world.campaigns[0].name = "June <news>"
    session.commit()
    return world


@pytest.fixture
def population(session) -> World:
    return make_population(session)


def stat(html: str, label: str) -> int:
    found = re.search(r'<span class="value">([\d,]+)</span><span class="label">' + label, html)
    assert found, label
    return int(found.group(1).replace(",", ""))


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MARKETER, Role.COMPLIANCE])
def test_every_role_sees_the_figures(population, staff_client, role):
    html = staff_client(role).get("/admin/").get_data(as_text=True)
    assert "<h1>Dashboard</h1>" in html
    assert (stat(html, "Active subscribers"), stat(html, "Waiting to confirm")) == (2, 1)
    assert (stat(html, "Unsubscribed"), stat(html, "Suppressed addresses")) == (0, 0)
    # The chart and its figures: the last 30 days.
    assert '<svg class="chart"' in html and "<title>Subscribers per day, last 30 days" in html
    assert re.search(r'data-total="new">3<', html)  # people 2, 3, 4
    assert re.search(r'data-total="confirmed">2<', html)  # 2 and 4
    assert re.search(r'data-total="unsubscribed">1<', html)
    today = utcnow().date().isoformat()
    assert re.search(
        rf'<tr><td>{today}</td><td class="num">1</td><td class="num">1</td>'
        r'<td class="num">1</td></tr>',
        html,
    )
    # The form: of the three who asked in 30 days, two confirmed.
    row = re.search(r'<tr data-form="signup">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'<td class="num">([\d,]+)</td>', row) == ["3", "2"]
    assert '<span class="rate">66.7%</span>' in row
    # The campaign: one of three opened by a person, two by proxies only; escaped name.
    campaign = re.search(r"<tr data-campaign=.*?</tr>", html, re.S).group(0)
    assert "June &lt;news&gt;" in campaign
    assert re.findall(r'<td class="num">([\d.]+%)', campaign) == ["33.3%", "66.7%", "0.0%", "0.0%"]
    links = 'href="/admin/campaigns/' in campaign
    assert links == (role is not Role.COMPLIANCE)
    assert 'href="/subscribe/demo"' in html


def test_the_longer_period(population, staff_client):
    html = staff_client(Role.MARKETER).get("/admin/?days=90").get_data(as_text=True)
    assert "last 90 days" in html and 'aria-current="page">Last 90 days' in html
    assert re.search(r'data-total="new">4<', html)
    row = re.search(r'<tr data-form="signup">(.*?)</tr>', html, re.S).group(1)
    assert '<span class="rate">75.0%</span>' in row


@pytest.mark.parametrize("days", ["7", "abc", "-30", "30.0", "9" * 40])
def test_any_other_period_is_refused_naming_the_field(staff_client, days):
    response = staff_client(Role.MARKETER).get(f"/admin/?days={days}")
    assert response.status_code == 400
    assert 'data-field="days"' in response.get_data(as_text=True)


def test_an_empty_list_says_so(staff_client):
    html = staff_client(Role.ADMIN).get("/admin/").get_data(as_text=True)
    assert "Nobody asked to subscribe through a form" in html
    assert "No campaign has been sent yet." in html
    assert stat(html, "Active subscribers") == 0
