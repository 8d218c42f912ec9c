"""Staff sign-in: no open redirect, a rate limit, sessions that need a role."""

from __future__ import annotations

import pytest

from mailer.accounts import users
from mailer.accounts.models import Role

PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff(session):
    return users.create_user(session, "ops@example.com", PASSWORD, Role.ADMIN)


def _login(client, next_="", password=PASSWORD):
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    url = "/login" + (f"?next={next_}" if next_ else "")
    return client.post(
        url, data={"csrf_token": token, "email": "ops@example.com", "password": password}
    )


@pytest.mark.parametrize(
    "next_",
    [
        "//evil.example",
        "/%09/evil.example",
        "/%0a/evil.example",
        "https://evil.example",
        "/\\evil.example",
        "%2F%2Fevil.example",
    ],
)
def test_no_open_redirect_after_login(client, staff, next_):
    response = _login(client, next_)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_a_local_next_is_followed(client, staff):
    assert _login(client, "/admin/outbox/").headers["Location"] == "/admin/outbox/"


def test_wrong_password_is_401_and_admin_needs_login(client, staff):
    assert _login(client, password="wrong password!!").status_code == 401
    assert client.get("/admin/").status_code == 302


def test_login_is_rate_limited(make_settings, make_app, session, staff):
    client = make_app(make_settings(MAILER_LOGIN_RATE_LIMIT="3/minute")).test_client()
    codes = [_login(client, password="wrong password!!").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
