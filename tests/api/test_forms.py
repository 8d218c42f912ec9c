"""Forms through the API: created forms serve sign-ups, a changed consent text is a new
version, and the old texts stay readable because consent events point at them."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from mailer.consent.models import ConsentEvent
from mailer.subscribers.forms import ensure_topic
from tests import signups

TEXT_1 = "Yes, email me the Shop newsletter. I can unsubscribe at any time."
TEXT_2 = "Yes, email me the Shop newsletter and offers. I can unsubscribe at any time."


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def topics(session):
    ensure_topic(session, "news", "News")
    ensure_topic(session, "offers", "Offers")
    session.commit()


def new_form(client, headers, **overrides):
    body = {
        "slug": "shop",
        "name": "Shop newsletter",
        "topics": ["news", "offers"],
        "locale": "en",
        "ask_name": True,
        "allowed_origins": ["https://Shop.example/"],
        "consent_text": TEXT_1,
        **overrides,
    }
    return client.post("/api/v1/forms", json=body, headers=headers)


def test_a_created_form_serves_sign_ups_with_its_text(client, topics, marketer):
    response = new_form(client, marketer)
    assert response.status_code == 201, response.get_json()
    form = response.get_json()
    assert form["topics"] == ["news", "offers"]
    assert form["allowed_origins"] == ["https://shop.example"]
    assert form["welcome_gmail_tip"] is True and form["welcome_enabled"] is False
    assert form["current_version"]["version"] == 1
    assert form["current_version"]["sha256"] == sha(TEXT_1)
    assert form["consent_text"] == TEXT_1

    page = client.get("/subscribe/shop")
    assert page.status_code == 200 and TEXT_1 in page.get_data(as_text=True)
    listed = client.get("/api/v1/forms", headers=marketer).get_json()
    assert [f["slug"] for f in listed] == ["shop"]
    assert client.get(f"/api/v1/forms/{form['id']}", headers=marketer).get_json() == form


def test_changing_the_text_adds_a_version_and_events_keep_theirs(client, session, topics, marketer):
    form = new_form(client, marketer).get_json()
    sign_up = {"email": "ann@example.com", "consent": True, "topics": ["news"]}
    origin = {"Origin": "https://shop.example"}
    assert client.post("/subscribe/shop", json=sign_up, headers=origin).status_code == 202

    url = f"/api/v1/forms/{form['id']}"
    changed = client.patch(url, json={"consent_text": TEXT_2}, headers=marketer).get_json()
    assert changed["current_version"]["version"] == 2
    assert changed["current_version"]["sha256"] == sha(TEXT_2)
    # The same text again, or other fields only: no new version.
    client.patch(url, json={"consent_text": f"  {TEXT_2} "}, headers=marketer)
    renamed = client.patch(url, json={"name": "Shop news"}, headers=marketer).get_json()
    assert renamed["name"] == "Shop news" and renamed["current_version"]["version"] == 2

    bob = {**sign_up, "email": "bob@example.com"}
    assert client.post("/subscribe/shop", json=bob, headers=origin).status_code == 202
    signups.drain(client.application)
    versions = client.get(f"{url}/versions", headers=marketer).get_json()
    assert [(v["version"], v["text"], v["sha256"]) for v in versions] == [
        (1, TEXT_1, sha(TEXT_1)),
        (2, TEXT_2, sha(TEXT_2)),
    ]
    assert all(v["created_at"] for v in versions)
    events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    assert [e.consent_text_sha256 for e in events] == [sha(TEXT_1), sha(TEXT_2)]


def test_patch_changes_settings(client, topics, marketer):
    form = new_form(client, marketer).get_json()
    body = {
        "slug": "shop-2",
        "topics": ["offers"],
        "locale": None,
        "welcome_enabled": True,
        "allowed_origins": [],
    }
    changed = client.patch(f"/api/v1/forms/{form['id']}", json=body, headers=marketer).get_json()
    assert changed["slug"] == "shop-2" and changed["topics"] == ["offers"]
    assert changed["locale"] is None and changed["welcome_enabled"] is True
    assert changed["allowed_origins"] == []
    assert client.get("/subscribe/shop").status_code == 404
    assert client.get("/subscribe/shop-2").status_code == 200


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"topics": ["news", "nope"]}, "topics.1"),
        ({"topics": []}, "topics"),
        ({"slug": "no spaces"}, "slug"),
        ({"locale": "fr"}, "locale"),
        ({"allowed_origins": ["https://shop.example/path"]}, "allowed_origins.0"),
        ({"allowed_origins": ["javascript:alert(1)"]}, "allowed_origins.0"),
        ({"consent_text": "   "}, "consent_text"),
        ({"consent_text": None}, "consent_text"),
        ({"name": ""}, "name"),
        ({"ask_name": "perhaps"}, "ask_name"),
    ],
)
def test_bad_input_names_the_field(client, topics, marketer, overrides, field):
    response = new_form(client, marketer, **overrides)
    assert response.status_code == 422
    assert field in response.get_json()["errors"], response.get_json()


def test_missing_fields_and_conflicts(client, topics, marketer):
    response = client.post("/api/v1/forms", json={}, headers=marketer)
    assert response.status_code == 422
    assert {"slug", "name", "topics", "consent_text"} <= set(response.get_json()["errors"])
    first = new_form(client, marketer).get_json()
    again = new_form(client, marketer)
    assert again.status_code == 409 and "slug" in again.get_json()["errors"]
    other = new_form(client, marketer, slug="other").get_json()
    clash = client.patch(f"/api/v1/forms/{other['id']}", json={"slug": "shop"}, headers=marketer)
    assert clash.status_code == 409
    bad = client.patch(f"/api/v1/forms/{first['id']}", json={"topics": ["x"]}, headers=marketer)
    assert bad.status_code == 422 and "topics.0" in bad.get_json()["errors"]
    missing = client.patch("/api/v1/forms/999", json={"name": "x"}, headers=marketer)
    assert missing.status_code == 404 and "form_id" in missing.get_json()["errors"]
    assert client.get("/api/v1/forms/999/versions", headers=marketer).status_code == 404
    huge = client.get("/api/v1/forms/99999999999999999999999", headers=marketer)
    assert huge.status_code == 404
    not_json = client.post("/api/v1/forms", data="x", headers=marketer)
    assert not_json.status_code in {400, 415, 422}
