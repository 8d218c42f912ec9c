"""Changing your own password: checked, hashed with scrypt, and every other session ends.
Session cookies: HttpOnly and SameSite always, Secure in production."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.accounts.models import Role, User
from tests.admin.conftest import PASSWORD, csrf_of, sign_in

PAGE = "/admin/account/password"
NEW = "a much longer passphrase 2026"


def _change(client, current=PASSWORD, new=NEW, confirm=None):
    return client.post(
        PAGE,
        data={
            "csrf_token": csrf_of(client, PAGE),
            "current_password": current,
            "new_password": new,
            "confirm": new if confirm is None else confirm,
        },
    )


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MARKETER, Role.COMPLIANCE])
def test_every_role_changes_their_password_and_other_sessions_end(app, session, staff_client, role):
    browser = staff_client(role)
    email = f"{role.value}1@staff.example"
    elsewhere = app.test_client()
    sign_in(elsewhere, email)
    assert elsewhere.get("/admin/").status_code == 200

    response = _change(browser)
    assert response.status_code == 302
    assert "signed out everywhere else" in browser.get(PAGE).get_data(as_text=True)
    assert browser.get("/admin/").status_code == 200  # this browser stays signed in

    gone = elsewhere.get("/admin/")
    assert gone.status_code == 302 and gone.headers["Location"].startswith("/login")
    user = session.scalar(select(User).where(User.email == email))
    assert user.password_hash.startswith("scrypt:")
    sign_in(app.test_client(), email, NEW)
    old = app.test_client()
    token = csrf_of(old)
    refused = old.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    assert refused.status_code == 401


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("not my password!", NEW, None, "not your current password"),
        (PASSWORD, "short", None, "at least 12"),
        (PASSWORD, NEW, NEW + "x", "do not match"),
        (PASSWORD, PASSWORD, None, "other than your current"),
        ("", NEW, None, "This field is required"),
    ],
)
def test_a_refused_change_says_why_and_changes_nothing(
    app, session, staff_client, current, new, confirm, message
):
    browser = staff_client(Role.MARKETER)
    before = session.scalar(select(User.password_hash))
    response = _change(browser, current, new, confirm)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert new not in page or new == PASSWORD  # passwords are never echoed back
    session.expire_all()
    assert session.scalar(select(User.password_hash)) == before
    assert browser.get("/admin/").status_code == 200


def test_wrong_current_passwords_count_towards_the_lockout(make_settings, make_app):
    app = make_app(make_settings(MAILER_LOGIN_LOCKOUT_ATTEMPTS="2"))
    from mailer.accounts import users

    session = app.extensions["mailer.db"]()
    users.create_user(session, "ann@staff.example", PASSWORD, Role.MARKETER)
    session.close()
    browser = app.test_client()
    sign_in(browser, "ann@staff.example")
    for _ in range(2):
        assert _change(browser, current="guess guess guess").status_code == 422
    response = _change(browser)
    assert response.status_code == 422
    assert "too many wrong passwords" in response.get_data(as_text=True)


def _session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, "no session cookie set"
    return cookies[-1]


def test_session_cookie_is_httponly_and_samesite_and_not_secure_outside_production(client):
    cookie = _session_cookie(client.get("/login"))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_session_cookie_is_secure_in_production_even_if_told_otherwise(make_settings, make_app):
    app = make_app(
        make_settings(
            MAILER_ENV="production",
            MAILER_BASE_URL="https://news.example.org",
            MAILER_SECURE_COOKIES="0",
        )
    )
    client = app.test_client()
    cookie = _session_cookie(client.get("/login", base_url="https://news.example.org"))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_signing_out_ends_every_session_so_a_copied_cookie_opens_nothing(app, staff_client):
    browser = staff_client(Role.MARKETER)
    copied = browser.get_cookie("session").value
    elsewhere = app.test_client()
    sign_in(elsewhere, "marketer1@staff.example")
    signed_out = browser.post("/logout", data={"csrf_token": csrf_of(browser, "/admin/")})
    assert signed_out.status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", copied, domain="localhost")
    for client in (browser, thief, elsewhere):
        response = client.get("/admin/")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    sign_in(app.test_client(), "marketer1@staff.example")  # and signing in again works
