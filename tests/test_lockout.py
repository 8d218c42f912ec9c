"""Login lockout per account: N wrong passwords lock the address for a while; a locked
account looks exactly like a wrong password, and like an address that has no account."""

from __future__ import annotations

import re
import time

import pytest

from mailer.accounts import users
from mailer.accounts.models import Role
from mailer.extensions import jobs

PASSWORD = "correct horse battery staple"
ATTEMPTS = 3
_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def _app(make_settings, make_app, lock_seconds: int):
    app = make_app(
        make_settings(
            MAILER_LOGIN_LOCKOUT_ATTEMPTS=str(ATTEMPTS),
            MAILER_LOGIN_LOCKOUT_WINDOW="600",
            MAILER_LOGIN_LOCKOUT_SECONDS=str(lock_seconds),
        )
    )
    session = app.extensions["mailer.db"]()
    users.create_user(session, "ops@example.com", PASSWORD, Role.ADMIN)
    session.close()
    return app


@pytest.fixture
def locking_app(make_settings, make_app):
    return _app(make_settings, make_app, 600)


def _login(client, email, password):
    token = _TOKEN.search(client.get("/login").get_data(as_text=True)).group(1)
    response = client.post(
        "/login", data={"csrf_token": token, "email": email, "password": password}
    )
    # The page as the visitor sees it, minus the per-session token and their own input.
    body = _TOKEN.sub("", response.get_data(as_text=True)).replace(f'value="{email}"', "")
    return response.status_code, body


def test_after_n_wrong_passwords_the_right_one_is_refused_like_a_wrong_one(locking_app):
    client = locking_app.test_client()
    wrong = [_login(client, "ops@example.com", "guess number one!") for _ in range(ATTEMPTS)]
    assert {status for status, _ in wrong} == {401}
    locked = _login(client, "ops@example.com", PASSWORD)
    assert locked == wrong[0], "a locked account must answer exactly as a wrong password"
    assert "Wrong email or password." in locked[1]
    # Also with the address written differently: the lock is on the account, not the text.
    assert _login(client, " OPS@Example.com", PASSWORD)[0] == 401


def test_the_lock_ends_by_itself(make_settings, make_app):
    locking_app = _app(make_settings, make_app, 3)
    client = locking_app.test_client()
    for _ in range(ATTEMPTS):
        _login(client, "ops@example.com", "guess number one!")
    assert _login(client, "ops@example.com", PASSWORD)[0] == 401
    deadline = time.monotonic() + 15
    while _login(client, "ops@example.com", PASSWORD)[0] != 302:
        assert time.monotonic() < deadline, "the lock never ended"
        time.sleep(0.5)


def test_an_address_without_an_account_is_counted_and_answered_the_same(locking_app):
    client = locking_app.test_client()
    real = [_login(client, "ops@example.com", "guess number one!") for _ in range(ATTEMPTS + 1)]
    ghost = [_login(client, "nobody@example.com", "guess number one!") for _ in range(ATTEMPTS + 1)]
    assert real == ghost
    with locking_app.app_context():
        keys = [k.decode() for k in jobs.redis.keys("mailer:lockout:*")]
    assert len([k for k in keys if ":lock:" in k]) == 2
    assert not any("example.com" in k for k in keys), "Redis must not hold the address"


def test_a_successful_sign_in_starts_the_count_afresh(locking_app):
    client = locking_app.test_client()
    for _ in range(ATTEMPTS - 1):
        _login(client, "ops@example.com", "guess number one!")
    assert _login(client, "ops@example.com", PASSWORD)[0] == 302
    other = locking_app.test_client()
    for _ in range(ATTEMPTS - 1):
        _login(other, "ops@example.com", "guess number one!")
    assert _login(other, "ops@example.com", PASSWORD)[0] == 302


def test_one_locked_account_does_not_lock_another(locking_app):
    session = locking_app.extensions["mailer.db"]()
    users.create_user(session, "eva@example.com", PASSWORD, Role.MARKETER)
    session.close()
    client = locking_app.test_client()
    for _ in range(ATTEMPTS):
        _login(client, "ops@example.com", "guess number one!")
    assert _login(client, "eva@example.com", PASSWORD)[0] == 302


def test_lockout_can_be_switched_off(make_settings, make_app):
    app = make_app(make_settings(MAILER_LOGIN_LOCKOUT_ATTEMPTS="0"))
    session = app.extensions["mailer.db"]()
    users.create_user(session, "ops@example.com", PASSWORD, Role.ADMIN)
    session.close()
    client = app.test_client()
    for _ in range(ATTEMPTS * 3):
        _login(client, "ops@example.com", "guess number one!")
    assert _login(client, "ops@example.com", PASSWORD)[0] == 302
