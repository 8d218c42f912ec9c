"""Who may call what: every route of topics, forms, subscribers, consent, subjects and the
audit log, for anonymous callers, each role, and a revoked key."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from mailer.accounts.models import ApiKey, Role
from mailer.database import utcnow

M, C = Role.MARKETER, Role.COMPLIANCE
SUBJECT = "/api/v1/subjects/someone@example.com"

# (method, path, json body, roles besides admin that may call it)
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
]
OURS = (
    "/api/v1/topics",
    "/api/v1/forms",
    "/api/v1/subscribers",
    "/api/v1/consent",
    "/api/v1/subjects",
    "/api/v1/audit-log",
)


def call(client, method, path, body, headers):
    if body is None and method == "POST":
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
        if rule.rule.startswith(OURS)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    listed = {
        (method, _shape(path.replace("someone@example.com", "<email>").replace("/1", "/<id>")))
        for method, path, _, _ in ROUTES
    }
    assert served == listed


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
        if role is Role.ADMIN or role in roles:
            assert response.status_code not in {401, 403, 500}, (role, response.get_json())
        else:
            assert response.status_code == 403, role
            assert "authorization" in response.get_json()["errors"]


@pytest.mark.parametrize(("method", "path", "body", "roles"), ROUTES)
def test_a_revoked_key_is_refused(client, session, make_key, method, path, body, roles):
    headers = make_key(Role.ADMIN)
    key = session.scalars(select(ApiKey).order_by(ApiKey.id.desc())).first()
    key.revoked_at = utcnow()
    session.commit()
    assert call(client, method, path, body, headers).status_code == 401


def test_the_openapi_document_lists_every_route(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith(OURS)
        for method in item
        if method != "parameters"
    }
    listed = {
        (method, _shape(path.replace("someone@example.com", "{email}").replace("/1", "/{id}")))
        for method, path, _, _ in ROUTES
    }
    assert {(m, _shape(p)) for m, p in documented} == listed
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
