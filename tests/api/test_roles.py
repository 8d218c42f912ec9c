"""Who may call what: every `/api/v1/` route the app serves, for anonymous callers, each role
and a revoked key, as the views' `@require(...)` grant it. The OpenAPI document is the one
public route (anyone may read how to call the API; every call itself needs a key)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from mailer.accounts.models import ApiKey, Role
from mailer.database import utcnow

M, C = Role.MARKETER, Role.COMPLIANCE
SUBJECT = "/api/v1/subjects/someone@example.com"
RULES = {"field": "attribute", "key": "plan", "type": "string", "op": "eq", "value": "pro"}
MJML = (
    "<mjml><mj-body><mj-section><mj-column><mj-text>Hi "
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text></mj-column></mj-section>'
    "</mj-body></mjml>"
)
CAMPAIGN = {
    "name": "Autumn",
    "subject": "Autumn offer",
    "from_name": "Shop",
    "from_email": "news@shop.example",
    "template_id": 1,
    "topic_id": 1,
}

# (method, path, json body, roles besides admin that may call it). Bodies are valid in shape,
# so an allowed role is judged on access, not stopped early (no row 1 exists: 404 is fine).
ROUTES = [
    ("GET", "/api/v1/topics", None, {M, C}),
    ("POST", "/api/v1/topics", {"slug": "news", "name": "News"}, {M}),
    ("GET", "/api/v1/forms", None, {M, C}),
    ("POST", "/api/v1/forms", {}, {M}),
    ("GET", "/api/v1/forms/1", None, {M, C}),
    ("PATCH", "/api/v1/forms/1", {}, {M}),
    ("GET", "/api/v1/forms/1/versions", None, {M, C}),
    ("GET", "/api/v1/subscribers", None, {M, C}),
    ("GET", "/api/v1/subscribers/1", None, {M, C}),
    ("PATCH", "/api/v1/subscribers/1", {}, {M}),
    ("POST", "/api/v1/subscribers/import", None, {M}),
    ("GET", "/api/v1/consent/events", None, {C}),
    ("GET", "/api/v1/consent/verify", None, {C}),
    ("GET", f"{SUBJECT}/consent", None, {C}),
    ("GET", f"{SUBJECT}/export", None, {C}),
    ("POST", f"{SUBJECT}/erase", {"confirm": "someone@example.com"}, {C}),
    ("DELETE", SUBJECT, {"confirm": "someone@example.com"}, {C}),
    ("GET", "/api/v1/audit-log", None, set()),
    ("GET", "/api/v1/segments", None, {M, C}),
    ("POST", "/api/v1/segments", {"name": "Pro", "rules": RULES}, {M}),
    ("GET", "/api/v1/segments/1", None, {M, C}),
    ("PATCH", "/api/v1/segments/1", {"name": "Pro plan"}, {M}),
    ("GET", "/api/v1/segments/1/count", None, {M, C}),
    ("POST", "/api/v1/segments/preview", {"rules": RULES}, {M, C}),
    ("GET", "/api/v1/templates", None, {M}),
    ("POST", "/api/v1/templates", {"name": "Plain", "mjml": MJML}, {M}),
    ("GET", "/api/v1/templates/1", None, {M}),
    ("PUT", "/api/v1/templates/1", {"name": "Plain", "mjml": MJML}, {M}),
    ("POST", "/api/v1/templates/1/preview", {}, {M}),
    ("GET", "/api/v1/campaigns", None, {M}),
    ("POST", "/api/v1/campaigns", CAMPAIGN, {M}),
    ("GET", "/api/v1/campaigns/1", None, {M}),
    ("PATCH", "/api/v1/campaigns/1", {"name": "Autumn sale"}, {M}),
    ("POST", "/api/v1/campaigns/1/schedule", {"send_at": "2099-01-01T00:00:00+00:00"}, {M}),
    ("POST", "/api/v1/campaigns/1/send", None, {M}),
    ("POST", "/api/v1/campaigns/1/pause", None, {M}),
    ("POST", "/api/v1/campaigns/1/resume", None, {M}),
    ("POST", "/api/v1/campaigns/1/cancel", None, {M}),
    ("POST", "/api/v1/campaigns/1/test", {"addresses": ["qa@example.org"]}, {M}),
    ("GET", "/api/v1/campaigns/1/report", None, {M, C}),
]
# Served to anyone: the API's own description.
PUBLIC = [("GET", "/api/v1/openapi.json")]
API = "/api/v1/"
# POST routes that take CSV, not JSON.
CSV = {"/api/v1/subscribers/import"}


def call(client, method, path, body, headers):
    if path in CSV:
        return client.open(
            path, method=method, data=b"email\n", headers=headers, content_type="text/csv"
        )
    return client.open(path, method=method, json=body, headers=headers)


def _shape(path: str) -> str:
    """Path parameters, however written (`<int:id>`, `{id}`), as one placeholder."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "<x>", path)


def test_the_table_covers_every_route(app):
    served = {
        (method, _shape(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    listed = {
        (method, _shape(path.replace("someone@example.com", "<email>").replace("/1", "/<id>")))
        for method, path, _, _ in ROUTES
    }
    assert len(listed) == len(ROUTES), "a route is listed twice"
    assert served == listed | set(PUBLIC)


@pytest.mark.parametrize(("method", "path"), PUBLIC)
def test_the_api_description_is_public(client, method, path):
    response = client.open(path, method=method)
    assert response.status_code == 200
    assert response.get_json()["paths"], "the document describes the routes"


@pytest.mark.parametrize(("method", "path", "body", "roles"), ROUTES)
def test_roles(client, make_key, method, path, body, roles):
    anonymous = call(client, method, path, body, {})
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert "authorization" in anonymous.get_json()["errors"]
    wrong_scheme = call(client, method, path, body, {"Authorization": "Basic eDp5"})
    assert wrong_scheme.status_code == 401
    for role in Role:
        response = call(client, method, path, body, make_key(role))
        assert response.status_code < 500, (role, response.get_json())
        if role is Role.ADMIN or role in roles:
            assert response.status_code not in {401, 403}, (role, response.get_json())
        else:
            assert response.status_code == 403, role
            assert "authorization" in response.get_json()["errors"]


@pytest.mark.parametrize(("method", "path", "body", "roles"), ROUTES)
def test_a_revoked_key_is_refused(client, session, make_key, method, path, body, roles):
    headers = make_key(Role.ADMIN)
    key = session.scalars(select(ApiKey).order_by(ApiKey.id.desc())).first()
    key.revoked_at = utcnow()
    session.commit()
    response = call(client, method, path, body, headers)
    assert response.status_code == 401
    assert "authorization" in response.get_json()["errors"]


def test_the_openapi_document_lists_every_route(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method != "parameters"
    }
    listed = {
        (method, _shape(path.replace("someone@example.com", "{email}").replace("/1", "/{id}")))
        for method, path, _, _ in ROUTES
    }
    assert {(m, _shape(p)) for m, p in documented} == listed
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
