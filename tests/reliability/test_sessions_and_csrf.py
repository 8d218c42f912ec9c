"""Cross-site request forgery on every state-changing route, and staff sessions that cannot be
fixed in advance or replayed after signing out.

The routes come from the app's URL map, so a form added tomorrow is covered the day it lands:
a signed-in admin's browser posting without our CSRF token (what a forged cross-site form
does) is refused, says so by field, and changes nothing. The few routes that take no CSRF token
by design are listed with the proof they take instead, and are refused too without it.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import func, select

from mailer.accounts import users
from mailer.accounts.models import Role
from mailer.models import Base
from tests.admin.conftest import PASSWORD, sign_in

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# Routes without our CSRF token by design, and what they take instead.
OTHER_PROOF = {
    "/subscribe/<slug>": "our token, or an Origin on the form's allow-list",
    "/unsubscribe/<token>": "the signed token (RFC 8058: the mail client's POST has no cookies)",
    "/webhooks/bounces": "the shared webhook secret",
    "/webhooks/bounces/raw": "the shared webhook secret",
}
# The REST API takes Bearer keys, never cookies: nothing to forge cross-site.
API = "/api/"


def _rows(session) -> int:
    session.expire_all()
    total = sum(
        session.scalar(select(func.count()).select_from(table))
        for table in Base.metadata.sorted_tables
    )
    session.commit()
    return total


def _url(rule: str) -> str:
    """A concrete URL for a rule: whole numbers for ids, a word for anything else."""
    url = re.sub(r"<int(\([^)]*\))?:[^>]+>", "1", rule)
    return re.sub(r"<[^>]+>", "x", url)


@pytest.fixture
def admin_client(app: Flask, session):
    users.create_user(session, "csrf-admin@staff.example", PASSWORD, Role.ADMIN)
    client = app.test_client()
    sign_in(client, "csrf-admin@staff.example")
    return client


def test_every_state_changing_form_needs_our_csrf_token(app, session, admin_client, recorder):
    routes = sorted(
        {
            (method, rule.rule)
            for rule in app.url_map.iter_rules()
            if not rule.rule.startswith(API)
            for method in rule.methods & STATE_CHANGING
        }
    )
    assert len(routes) >= 10, routes
    assert admin_client.get("/admin/").status_code == 200, "the admin is signed in"
    problems = []
    for method, rule in routes:
        before = _rows(session)
        response = admin_client.open(
            _url(rule),
            method=method,
            data={"name": "forged", "email": "x@example.org", "confirm": "yes"},
            headers={"Accept": "application/json", "Origin": "https://evil.example"},
        )
        recorder.inputs_tried += 1
        if response.status_code >= 500:
            recorder.server_errors += 1
        errors = set((response.get_json(silent=True) or {}).get("errors", {}))
        # Pages that answer in HTML whatever is asked name the field on the page.
        page = response.get_data(as_text=True)
        errors |= set(re.findall(r'data-field="([^"]+)"', page))
        if "The form has expired" in page:  # the CSRF message, in the admin's own error list
            errors.add("csrf_token")
        if rule in OTHER_PROOF:
            if not 400 <= response.status_code < 500:
                problems.append(f"{method} {rule} without {OTHER_PROOF[rule]}: {response.status}")
        elif response.status_code != 400 or "csrf_token" not in errors:
            problems.append(f"{method} {rule}: {response.status} {errors}")
        if _rows(session) != before:
            problems.append(f"{method} {rule}: a forged request changed the database")
    assert not problems, "\n".join(problems)


def test_a_session_made_before_signing_in_is_not_the_signed_in_one(app, session):
    """Session fixation: nothing an attacker planted in a session before the sign-in survives
    it, and the cookie changes."""
    users.create_user(session, "fix@staff.example", PASSWORD, Role.ADMIN)
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as planted:
        planted["planted"] = "by someone else"
    before = client.get_cookie("session").value
    sign_in(client, "fix@staff.example")
    after = client.get_cookie("session").value
    assert after != before
    with client.session_transaction() as current:
        assert "planted" not in current
    assert client.get("/admin/").status_code == 200


def test_a_copied_session_cookie_opens_nothing_after_signing_out(app, session):
    users.create_user(session, "out@staff.example", PASSWORD, Role.ADMIN)
    client = app.test_client()
    sign_in(client, "out@staff.example")
    copied = client.get_cookie("session").value
    token = re.search(
        r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/admin/").get_data(as_text=True)
    )
    logout = client.post("/logout", data={"csrf_token": token.group(1) if token else ""})
    assert logout.status_code == 302
    assert client.get("/admin/").status_code == 302, "signed out in this browser"
    thief = app.test_client()
    thief.set_cookie("session", copied, domain="localhost")
    assert thief.get("/admin/").status_code == 302, "the copied cookie still signs in"
