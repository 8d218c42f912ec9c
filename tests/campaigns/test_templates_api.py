"""The template API: checked on save (MJML and Jinja errors with their lines), previewed as a
subscriber would see it, and flagged when campaigns may not use it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.campaigns.models import Template
from mailer.subscribers.models import Subscriber

MJML = """<mjml>
  <mj-body>
    <mj-section><mj-column>
      <mj-text>Hello {{ subscriber.first_name | default("there") }} from {{ attributes.city
        }}</mj-text>
      <mj-button href="https://shop.example/sale">To the sale</mj-button>
      <mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
    </mj-column></mj-section>
  </mj-body>
</mjml>"""
DRAFT = MJML.replace('<a href="{{ unsubscribe_url }}">Unsubscribe</a>', "Bye")
INVALID = """<mjml>
  <mj-body>
    <mj-section><mj-column>
      <mj-buton>Typo</mj-buton>
    </mj-column></mj-section>
  </mj-body>
</mjml>"""


@pytest.fixture
def api(client, session):
    _, key = create_api_key(session, Role.MARKETER, "tests")

    def call(method, path, **kwargs):
        return getattr(client, method)(path, headers={"Authorization": f"Bearer {key}"}, **kwargs)

    return call


def _count(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Template))


def test_create_list_get_and_update(api, session):
    created = api("post", "/api/v1/templates", json={"name": "Weekly", "mjml": MJML})
    assert created.status_code == 201, created.json
    body = created.json
    assert body["name"] == "Weekly" and body["mjml"] == MJML and body["text"] is None
    assert body["campaign_ready"] is True and body["campaign_ready_reason"] is None

    assert [t["id"] for t in api("get", "/api/v1/templates").json] == [body["id"]]
    assert api("get", f"/api/v1/templates/{body['id']}").json["name"] == "Weekly"

    text = "Hi {{ subscriber.first_name | default('there') }}\n{{ unsubscribe_url }}\n"
    updated = api("put", f"/api/v1/templates/{body['id']}", json={"name": "Weekly 2", "text": text})
    assert updated.status_code == 200, updated.json
    assert updated.json["name"] == "Weekly 2" and updated.json["text"] == text
    assert updated.json["mjml"] == MJML  # left out: kept
    cleared = api("put", f"/api/v1/templates/{body['id']}", json={"text": None})
    assert cleared.json["text"] is None


def test_a_long_newsletter_is_accepted_although_other_requests_stay_small(api):
    # A real newsletter's MJML easily passes the app's 64 KB body limit for other requests.
    story = "<mj-text>" + "Lorem ipsum dolor sit amet, consectetur. " * 40 + "</mj-text>\n"
    long = MJML.replace("<mj-button", story * 70 + "<mj-button")
    assert len(long) > 100_000
    created = api("post", "/api/v1/templates", json={"name": "Long", "mjml": long})
    assert created.status_code == 201, created.json
    too_big = api("post", "/api/v1/topics", json={"slug": "x", "name": "y" * 100_000})
    assert too_big.status_code == 413


def test_a_template_without_unsubscribe_link_is_saved_but_not_campaign_ready(api):
    response = api("post", "/api/v1/templates", json={"name": "Draft", "mjml": DRAFT})
    assert response.status_code == 201
    assert response.json["campaign_ready"] is False
    assert "unsubscribe_url" in response.json["campaign_ready_reason"]


def test_mjml_errors_come_back_with_their_lines(api, session):
    response = api("post", "/api/v1/templates", json={"name": "Bad", "mjml": INVALID})
    assert response.status_code == 422
    messages = response.json["errors"]["mjml"]
    assert any(m.startswith("line 4: ") and "mj-buton" in m for m in messages), messages
    assert _count(session) == 0


def test_template_injection_is_refused_with_field_and_line(api, session):
    evil = MJML.replace("To the sale", "{{ self.__init__.__globals__ }}")
    response = api("post", "/api/v1/templates", json={"name": "Evil", "mjml": evil})
    assert response.status_code == 422
    assert response.json["errors"]["mjml"][0].endswith("at line 6")
    text = "Hi\n{{ subscirber.name }}\n"
    response = api("post", "/api/v1/templates", json={"name": "T", "mjml": MJML, "text": text})
    assert response.status_code == 422
    assert response.json == {"errors": {"text": ["unknown variable 'subscirber' at line 2"]}}
    assert _count(session) == 0


def test_a_refused_update_leaves_the_template_as_it_was(api, session):
    template_id = api("post", "/api/v1/templates", json={"name": "Ok", "mjml": MJML}).json["id"]
    evil = MJML.replace("To the sale", "{{ cycler.__init__.__globals__.os }}")
    response = api("put", f"/api/v1/templates/{template_id}", json={"mjml": evil, "name": "X"})
    assert response.status_code == 422 and "mjml" in response.json["errors"]
    session.expire_all()
    stored = session.get(Template, template_id)
    assert (stored.name, stored.mjml) == ("Ok", MJML)


def test_bad_requests_name_the_field(api):
    response = api("post", "/api/v1/templates", json={"name": ""})
    assert response.status_code == 422
    assert set(response.json["errors"]) == {"name", "mjml"}
    missing = api("get", "/api/v1/templates/999")
    assert missing.status_code == 404 and "template_id" in missing.json["errors"]
    assert api("put", "/api/v1/templates/999", json={"name": "x"}).status_code == 404


def test_preview_with_the_sample_subscriber(api):
    template_id = api("post", "/api/v1/templates", json={"name": "P", "mjml": MJML}).json["id"]
    response = api(
        "post",
        f"/api/v1/templates/{template_id}/preview",
        json={"subject": "Sale for {{ subscriber.first_name }}", "preheader": "Only today"},
    )
    assert response.status_code == 200, response.json
    body = response.json
    assert body["subject"] == "Sale for Sam"
    assert "Hello Sam from Oslo" in body["html"] and "Only today" in body["html"]
    assert "Hello Sam from Oslo" in body["text"]
    assert "To the sale (https://shop.example/sale)" in body["text"]
    # Nothing tracked, and the unsubscribe link in a preview goes nowhere.
    assert "/t/c/" not in body["html"] and 'href="#unsubscribe"' in body["html"]
    assert body["desktop"] == {"html": body["html"], "width": 600}
    assert body["mobile"] == {"html": body["html"], "width": 375}


def test_preview_as_a_subscriber_escapes_their_data(api, session):
    template_id = api("post", "/api/v1/templates", json={"name": "P", "mjml": MJML}).json["id"]
    subscriber = Subscriber(
        email="ann@example.org", name="Ann Lee", attributes={"city": "<b>{{ 7*7 }}</b>"}
    )
    session.add(subscriber)
    session.commit()
    path = f"/api/v1/templates/{template_id}/preview"
    body = api("post", path, json={"subscriber_id": subscriber.id}).json
    assert "Hello Ann from &lt;b&gt;{{ 7*7 }}&lt;/b&gt;" in body["html"]
    assert "Hello Ann from <b>{{ 7*7 }}</b>" in body["text"]

    unknown = api("post", path, json={"subscriber_id": subscriber.id + 100})
    assert unknown.status_code == 422 and "subscriber_id" in unknown.json["errors"]
    bad_subject = api("post", path, json={"subject": "{{ subscriber.__class__ }}"})
    assert bad_subject.status_code == 422 and "subject" in bad_subject.json["errors"]


def test_keys_and_roles(client, session):
    assert client.get("/api/v1/templates").status_code == 401
    _, compliance = create_api_key(session, Role.COMPLIANCE, "audit")
    response = client.get("/api/v1/templates", headers={"Authorization": f"Bearer {compliance}"})
    assert response.status_code == 403


def test_documented_in_openapi(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"/api/v1/templates", "/api/v1/templates/{template_id}"} <= set(paths)
    assert "post" in paths["/api/v1/templates/{template_id}/preview"]
