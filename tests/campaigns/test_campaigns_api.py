"""The campaign API as a marketer uses it: clear errors naming the field, states that hold."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailer.database import utcnow
from tests.campaigns.conftest import make_audience, make_campaign


@pytest.fixture
def basics(campaign_session):
    topic, _ = make_audience(campaign_session, 3)
    campaign = make_campaign(campaign_session, topic)
    return topic, campaign


def _new(api, topic, template, **over):
    body = {
        **{
            "name": "Winter",
            "subject": "Winter is coming, {{ subscriber.first_name | default('friend') }}",
            "from_name": "Shop",
            "from_email": "news@shop.example",
            "template_id": template,
            "topic_id": topic.id,
        },
        **over,
    }
    return api("post", "/api/v1/campaigns", json=body)


def test_create_list_and_read(api, basics):
    topic, existing = basics
    response = _new(api, topic, existing.template_id, reply_to="help@shop.example")
    assert response.status_code == 201, response.json
    created = response.json
    assert created["status"] == "draft"
    assert created["track_opens"] is True and created["track_clicks"] is True
    assert created["reply_to"] == "help@shop.example"
    listed = api("get", "/api/v1/campaigns").json
    assert [c["id"] for c in listed] == [created["id"], existing.id]
    assert api("get", f"/api/v1/campaigns/{created['id']}").json["counts"]["total"] == 0


def test_new_campaigns_follow_the_admins_tracking_defaults(api, basics, app, session):
    from mailer.settings import store

    topic, existing = basics
    store.save(
        session, "tracking", {"opens": False, "clicks": True}, app.config["MAILER"], user_id=None
    )
    created = _new(api, topic, existing.template_id).json
    assert (created["track_opens"], created["track_clicks"]) == (False, True)
    chosen = _new(api, topic, existing.template_id, track_opens=True).json
    assert chosen["track_opens"] is True


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"from_email": "not an address"}, "from_email"),
        ({"from_name": "Eve\r\nBcc: victim@example.org"}, "from_name"),
        ({"subject": "Hi\r\nBcc: victim@example.org"}, "subject"),
        ({"subject": ""}, "subject"),
        ({"template_id": 9999}, "template_id"),
        ({"topic_id": 9999}, "topic_id"),
        ({"segment_id": 9999}, "segment_id"),
        ({"template_id": "1; DROP TABLE campaigns"}, "template_id"),
        ({"track_opens": "maybe"}, "track_opens"),
    ],
)
def test_bad_fields_are_named(api, basics, override, field):
    topic, existing = basics
    response = _new(api, topic, existing.template_id, **override)
    assert response.status_code == 422, response.json
    assert field in response.json["errors"], response.json


def test_unknown_campaign_is_404_and_no_key_is_401(api, campaign_app):
    assert api("get", "/api/v1/campaigns/4242").status_code == 404
    assert api("post", "/api/v1/campaigns/4242/send").json["errors"]["campaign_id"]
    anonymous = campaign_app.test_client().get("/api/v1/campaigns")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")


def test_schedule_needs_a_timezone_and_state_changes_are_guarded(api, basics):
    _, campaign = basics
    naive = (utcnow() + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    response = api("post", f"/api/v1/campaigns/{campaign.id}/schedule", json={"send_at": naive})
    assert response.status_code == 422 and "send_at" in response.json["errors"]

    later = (utcnow() + timedelta(hours=1)).isoformat()
    response = api("post", f"/api/v1/campaigns/{campaign.id}/schedule", json={"send_at": later})
    assert response.status_code == 200 and response.json["status"] == "scheduled"

    # Only a sending campaign can pause; a paused one resume.
    assert api("post", f"/api/v1/campaigns/{campaign.id}/pause").status_code == 409
    assert api("post", f"/api/v1/campaigns/{campaign.id}/resume").status_code == 409
    cancelled = api("post", f"/api/v1/campaigns/{campaign.id}/cancel")
    assert cancelled.json["status"] == "cancelled"
    again = api("post", f"/api/v1/campaigns/{campaign.id}/send")
    assert again.status_code == 409 and "status" in again.json["errors"]
    edit = api("patch", f"/api/v1/campaigns/{campaign.id}", json={"name": "x"})
    assert edit.status_code == 409


def test_a_template_without_an_unsubscribe_link_cannot_be_sent(api, campaign_session):
    topic, _ = make_audience(campaign_session, 1)
    mjml = (
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>"
    )
    campaign = make_campaign(campaign_session, topic, mjml=mjml)
    response = api("post", f"/api/v1/campaigns/{campaign.id}/send")
    assert response.status_code == 422, response.json
    assert "unsubscribe" in str(response.json["errors"]).lower()
    assert api("get", f"/api/v1/campaigns/{campaign.id}").json["status"] == "draft"


def test_test_send_is_marked_and_acts_for_nobody(api, basics, campaign_session, faulty_smtp):
    _, campaign = basics
    response = api(
        "post",
        f"/api/v1/campaigns/{campaign.id}/test",
        json={"addresses": ["boss@shop.example"], "subscriber_id": 2},
    )
    assert response.status_code == 200, response.json
    assert [(r["address"], r["outcome"]) for r in response.json] == [("boss@shop.example", "sent")]
    msg = faulty_smtp.received[0].message()
    assert msg["Subject"].startswith("[Test]")
    assert "Reader1" in msg["Subject"]  # personalised as subscriber 2
    assert msg["X-Mailer-Test"] == "1"
    # Still a draft; no deliveries were created.
    body = api("get", f"/api/v1/campaigns/{campaign.id}").json
    assert body["status"] == "draft" and body["counts"]["total"] == 0
    bad = api("post", f"/api/v1/campaigns/{campaign.id}/test", json={"addresses": ["nope"]})
    assert bad.status_code == 422 and "addresses.0" in bad.json["errors"]
    many = [f"a{i}@shop.example" for i in range(11)]
    assert (
        api("post", f"/api/v1/campaigns/{campaign.id}/test", json={"addresses": many}).status_code
        == 422
    )


def test_openapi_document_lists_the_campaign_routes(campaign_app):
    spec = campaign_app.test_client().get("/api/v1/openapi.json").json
    paths = spec["paths"]
    for path in (
        "/api/v1/campaigns",
        "/api/v1/campaigns/{campaign_id}",
        "/api/v1/campaigns/{campaign_id}/send",
        "/api/v1/campaigns/{campaign_id}/schedule",
        "/api/v1/campaigns/{campaign_id}/pause",
        "/api/v1/campaigns/{campaign_id}/resume",
        "/api/v1/campaigns/{campaign_id}/cancel",
        "/api/v1/campaigns/{campaign_id}/test",
        "/api/v1/campaigns/{campaign_id}/report",
    ):
        assert path in paths, path
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
