"""A laptop-sized browser signed in through the real login form: `desk(Role.MARKETER)`.

Pages are watched for CSP violations and script errors like the phone fixtures in
tests/browser/conftest.py; call `desk.assert_clean(page)` at the end of a test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page

from mailer.accounts import users
from mailer.accounts.models import Role
from tests.browser.conftest import CSP_LISTENER, LiveServer, Phone, Watch

PASSWORD = "correct horse battery staple"
LAPTOP = {"viewport": {"width": 1366, "height": 900}}


class Desk(Phone):
    """A browser context (laptop-sized unless asked otherwise) with a signed-in user."""

    page: Page


@pytest.fixture
def desk(chromium: Browser, live_server: LiveServer, session) -> Iterator[Callable[..., Desk]]:
    contexts = []
    made = 0

    def make(role: Role, viewport: dict | None = None) -> Desk:
        nonlocal made
        made += 1
        email = f"{role.value}{made}@staff.example"
        users.create_user(session, email, PASSWORD, role)
        watch = Watch()
        options = {"viewport": viewport} if viewport else LAPTOP
        context = chromium.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(10_000)
        context.on("console", watch.on_console)
        context.add_init_script(CSP_LISTENER)
        contexts.append(context)
        desk = Desk(context, watch)
        page = desk.new_page()
        page.goto("/login")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/admin/")
        desk.page = page
        return desk

    try:
        yield make
    finally:
        for context in contexts:
            context.close()
