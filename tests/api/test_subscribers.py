"""Subscribers through the API: a stable, paginated list; a profile with topics, engagement
and consent history; PATCH of the few fields staff may change, within bounds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer.compliance.models import StaffAccess
from mailer.database import utcnow
from mailer.subscribers import forms
from mailer.subscribers.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from tests.compliance.subjects import EMAIL, subscribed


@pytest.fixture
def people(session):
    """Twelve subscribers: every third unsubscribed from news, the rest active on it; the
    even ones also pending on offers."""
    news = forms.ensure_topic(session, "news", "News")
    offers = forms.ensure_topic(session, "offers", "Offers")
    rows = []
    for i in range(12):
        gone = i % 3 == 0
        person = Subscriber(
            email=f"person{i:02d}@example.com",
            status=SubscriberStatus.UNSUBSCRIBED if gone else SubscriberStatus.ACTIVE,
            attributes={},
        )
        person.subscriptions.append(
            Subscription(
                topic=news,
                status=SubscriptionStatus.UNSUBSCRIBED if gone else SubscriptionStatus.ACTIVE,
            )
        )
        if i % 2 == 0:
            person.subscriptions.append(Subscription(topic=offers))
        session.add(person)
        rows.append(person)
    session.commit()
    return rows


def listing(client, headers, **query):
    response = client.get("/api/v1/subscribers", query_string=query, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_list_pages_in_a_stable_order_with_a_total(client, people, marketer):
    first = listing(client, marketer, per_page=5)
    second = listing(client, marketer, per_page=5, page=2)
    third = listing(client, marketer, per_page=5, page=3)
    assert first["total"] == second["total"] == 12
    emails = [s["email"] for page in (first, second, third) for s in page["items"]]
    assert emails == [f"person{i:02d}@example.com" for i in range(12)]
    assert listing(client, marketer, per_page=5, page=9)["items"] == []
    assert first["items"][0]["topics"] == [
        {"slug": "news", "status": "unsubscribed"},
        {"slug": "offers", "status": "pending"},
    ]


def test_the_list_filters(client, people, compliance):
    one = listing(client, compliance, email="  Person04@EXAMPLE.com ")
    assert [s["email"] for s in one["items"]] == ["person04@example.com"] and one["total"] == 1
    gone = listing(client, compliance, status="unsubscribed")
    assert [s["email"][6:8] for s in gone["items"]] == ["00", "03", "06", "09"]
    on_offers = listing(client, compliance, topic="offers")
    assert on_offers["total"] == 6
    active_news = listing(client, compliance, topic="news", status="active")
    assert active_news["total"] == 8
    assert listing(client, compliance, topic="offers", status="active")["total"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "happy"}, "status"),
        ({"topic": "nope"}, "topic"),
        ({"topic": "not a slug"}, "topic"),
        ({"email": "not-an-address"}, "email"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": 1000}, "per_page"),
        ({"page": "x"}, "page"),
    ],
)
def test_bad_list_filters_name_the_field(client, people, marketer, query, field):
    response = client.get("/api/v1/subscribers", query_string=query, headers=marketer)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_the_profile_shows_topics_engagement_and_consent_history(
    client, session, work, inbox, compliance
):
    subscribed(client, session, work, inbox)
    person = session.scalar(select(Subscriber).where(Subscriber.email == EMAIL))
    now = utcnow()
    person.last_open_at, person.last_click_at = now - timedelta(hours=1), now
    person.open_count, person.machine_open_count, person.click_count = 2, 5, 1
    person.bounce_count = 1
    session.commit()

    response = client.get(f"/api/v1/subscribers/{person.id}", headers=compliance)
    assert response.status_code == 200
    profile = response.get_json()
    assert profile["email"] == EMAIL and profile["status"] == "active"
    assert [(t["slug"], t["status"]) for t in profile["topics"]] == [("news", "active")]
    engagement = profile["engagement"]
    assert (engagement["open_count"], engagement["machine_open_count"]) == (2, 5)
    assert (engagement["click_count"], engagement["bounce_count"]) == (1, 1)
    assert engagement["tracking_enabled"] is True and engagement["last_click_at"]
    history = profile["consent_history"]
    assert [e["type"] for e in history] == ["requested", "confirmed"]
    requested = history[0]
    assert requested["topics"] == ["news"] and requested["form_slug"] == "news"
    assert requested["form_version"] == 1 and len(requested["consent_text_sha256"]) == 64
    assert requested["source"] == "form" and requested["locale"] == "en"
    assert history[1]["evidence"]["method"] == "double_opt_in"

    (logged,) = session.scalars(select(StaffAccess)).all()
    assert logged.action == "subscriber.view" and logged.subscriber_id == person.id
    assert logged.subject_masked == "e***@example.com" and len(logged.subject_hmac) == 64
    assert logged.api_key_name == "DPO desk"
    assert client.get("/api/v1/subscribers/999", headers=compliance).status_code == 404
    huge = client.get("/api/v1/subscribers/99999999999999999999", headers=compliance)
    assert huge.status_code == 404


def test_patch_merges_attributes_and_changes_profile_fields(client, session, people, marketer):
    url = f"/api/v1/subscribers/{people[1].id}"
    body = {"attributes": {"city": "Oslo", "tags": ["vip", 3, True], "since": "2026-01-02"}}
    assert client.patch(url, json=body, headers=marketer).status_code == 200
    body = {
        "attributes": {"city": None, "score": 4.5},
        "name": "  Ann   Smith ",
        "locale": "nb",
        "tracking_enabled": False,
    }
    response = client.patch(url, json=body, headers=marketer)
    assert response.status_code == 200
    profile = response.get_json()
    assert profile["attributes"] == {"tags": ["vip", 3, True], "since": "2026-01-02", "score": 4.5}
    assert profile["name"] == "Ann Smith" and profile["locale"] == "nb"
    assert profile["engagement"]["tracking_enabled"] is False
    session.expire_all()
    stored = session.get(Subscriber, people[1].id)
    assert stored.tracking_enabled is False and stored.attributes["score"] == 4.5
    assert stored.status is SubscriberStatus.ACTIVE


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "active"}, "status"),
        ({"email": "new@example.com"}, "email"),
        ({"colour": "red"}, "colour"),
        ({"locale": "fr"}, "locale"),
        ({"name": "Ann\r\nBcc: x@example.com"}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"tracking_enabled": "maybe"}, "tracking_enabled"),
        ({"attributes": ["a"]}, "attributes"),
        ({"attributes": {"k" * 65: 1}}, f"attributes.{'k' * 65}"),
        ({"attributes": {"nested": {"a": 1}}}, "attributes.nested"),
        ({"attributes": {"long": "x" * 1001}}, "attributes.long"),
        ({"attributes": {"tags": ["ok", {"a": 1}]}}, "attributes.tags.1"),
        ({"attributes": {f"k{i}": i for i in range(101)}}, "attributes"),
    ],
)
def test_patch_refuses_bad_input_by_field(client, session, people, marketer, body, field):
    url = f"/api/v1/subscribers/{people[1].id}"
    response = client.patch(url, json=body, headers=marketer)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"], response.get_json()
    session.expire_all()
    stored = session.get(Subscriber, people[1].id)
    assert stored.attributes == {} and stored.status is SubscriberStatus.ACTIVE


def test_patch_keeps_the_attribute_limit_across_calls(client, people, marketer):
    url = f"/api/v1/subscribers/{people[1].id}"
    full = {"attributes": {f"k{i}": i for i in range(100)}}
    assert client.patch(url, json=full, headers=marketer).status_code == 200
    one_more = client.patch(url, json={"attributes": {"extra": 1}}, headers=marketer)
    assert one_more.status_code == 422 and "attributes" in one_more.get_json()["errors"]
    swap = {"attributes": {"k0": None, "extra": 1}}
    assert client.patch(url, json=swap, headers=marketer).status_code == 200
    assert client.patch("/api/v1/subscribers/999", json={}, headers=marketer).status_code == 404
