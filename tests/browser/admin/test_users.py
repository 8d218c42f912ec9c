"""Users, API keys and sign-in security in a real browser: an admin adds a marketer who signs
in and changes their password (their other browser is signed out), an API key is shown once,
works and stops when revoked, and a locked account looks just like a wrong password."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, expect

from mailer.accounts import users
from mailer.accounts.models import Role
from tests.browser.admin.conftest import LAPTOP, PASSWORD, Desk
from tests.browser.conftest import CSP_LISTENER, LiveServer, Watch

LOCK_AFTER = 3


@pytest.fixture
def settings(make_settings):
    """Lock after a few failures, for a few seconds (the test waits the lock out)."""
    return make_settings(
        MAILER_LOGIN_LOCKOUT_ATTEMPTS=str(LOCK_AFTER), MAILER_LOGIN_LOCKOUT_SECONDS="4"
    )


@pytest.fixture
def browser(chromium: Browser, live_server: LiveServer) -> Iterator[Callable[[], Desk]]:
    """A fresh browser (its own cookies), not signed in."""
    contexts = []

    def make() -> Desk:
        watch = Watch()
        context = chromium.new_context(base_url=live_server.url, **LAPTOP)
        context.set_default_timeout(10_000)
        context.on("console", watch.on_console)
        context.add_init_script(CSP_LISTENER)
        contexts.append(context)
        desk = Desk(context, watch)
        desk.page = desk.new_page()
        return desk

    yield make
    for context in contexts:
        context.close()


def _sign_in(desk: Desk, email: str, password: str) -> None:
    page = desk.page
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def test_an_admin_adds_a_marketer_who_changes_their_password_and_is_signed_out_elsewhere(
    desk, browser
):
    admin = desk(Role.ADMIN)
    page = admin.page
    page.click(".admin-nav >> text=Users & API keys")
    page.fill("#email", "mia@shop.example")
    page.select_option("#role", "marketer")
    page.click("text=Add user")
    expect(page.locator(".shown-once h2")).to_contain_text("mia@shop.example")
    initial = page.locator("#new-password").inner_text()
    assert len(initial) >= 12
    admin.assert_clean(page)

    laptop, phone = browser(), browser()
    for b in (laptop, phone):
        _sign_in(b, "mia@shop.example", initial)
        b.page.wait_for_url("**/admin/")
    assert "Settings" not in laptop.page.locator(".admin-nav").inner_text()

    p = laptop.page
    p.click(".admin-bar >> text=Password")
    p.fill("#current_password", initial)
    p.fill("#new_password", "my own long passphrase")
    p.fill("#confirm", "my own long passphrase")
    p.click("button:has-text('Change password')")
    expect(p.locator(".flash.ok")).to_contain_text("signed out everywhere else")
    laptop.assert_clean(p)

    phone.page.goto("/admin/")
    phone.page.wait_for_url("**/login**")
    _sign_in(phone, "mia@shop.example", initial)
    expect(phone.page.locator("[role=alert]")).to_contain_text("Wrong email or password")
    _sign_in(phone, "mia@shop.example", "my own long passphrase")
    phone.page.wait_for_url("**/admin/")
    phone.assert_clean(phone.page)


def test_an_api_key_is_shown_once_works_and_stops_when_revoked(desk):
    admin = desk(Role.ADMIN)
    page = admin.page
    page.goto("/admin/users/api-keys")
    page.fill("#name", "CRM sync")
    page.select_option("#role", "marketer")
    page.click("text=Create key")
    secret = page.locator("#new-key").inner_text()
    assert secret.startswith("mk_")

    api = admin.context.request
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/topics", headers=headers).status == 200

    page.goto("/admin/users/api-keys")
    assert secret not in page.content()
    row = page.locator("tr", has_text="CRM sync")
    expect(row).to_contain_text(secret[:10])
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button:has-text('Revoke')").click()
    expect(page.locator(".flash.ok")).to_contain_text("revoked")
    expect(page.locator("tr", has_text="CRM sync")).to_contain_text("revoked")
    assert api.get("/api/v1/topics", headers=headers).status == 401
    admin.assert_clean(page)


def test_a_locked_account_answers_like_a_wrong_password_until_the_lock_ends(session, browser):
    users.create_user(session, "eva@shop.example", PASSWORD, Role.MARKETER)
    b = browser()
    messages = []
    for _ in range(LOCK_AFTER):
        _sign_in(b, "eva@shop.example", "not the password")
        messages.append(b.page.locator("[role=alert]").inner_text())
    assert set(messages) == {"Wrong email or password."}

    _sign_in(b, "eva@shop.example", PASSWORD)
    assert b.page.locator("[role=alert]").inner_text() == messages[0]
    assert re.search(r"/login$", b.page.url)

    deadline = time.monotonic() + 20
    while "/admin/" not in b.page.url:
        assert time.monotonic() < deadline, "the lock never ended"
        time.sleep(1)
        _sign_in(b, "eva@shop.example", PASSWORD)
    b.assert_clean(b.page)
