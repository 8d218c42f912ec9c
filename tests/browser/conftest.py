"""Real headless Chromium against the real app, served over HTTP on 127.0.0.1.

Chromium is Debian's (/usr/bin/chromium); Playwright never downloads a browser here.
Every page a test opens is watched for Content-Security-Policy violations and script errors:
our pages must satisfy the CSP they send.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    sync_playwright,
)
from werkzeug.serving import BaseWSGIServer, make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# An iPhone-sized phone: 375 CSS pixels wide, retina, touch.
MOBILE = {
    "viewport": {"width": 375, "height": 812},
    "screen": {"width": 375, "height": 812},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Records `securitypolicyviolation` events too (init scripts are injected by the browser, not
# by the page, so the CSP does not block this one). Console messages cover no-JS pages.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
});
"""


@dataclass
class LiveServer:
    url: str
    server: BaseWSGIServer
    thread: threading.Thread


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", server, thread)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def chromium(playwright_instance: Playwright) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@dataclass
class Watch:
    """What the browser complained about while the test ran."""

    csp: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_console(self, msg: ConsoleMessage) -> None:
        text = msg.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.csp.append(f"{msg.type}: {text} ({msg.location.get('url', '')})")

    def assert_clean(self) -> None:
        assert not self.csp, "the page broke its own Content-Security-Policy:\n" + "\n".join(
            self.csp
        )
        assert not self.errors, "script errors on the page:\n" + "\n".join(self.errors)


@dataclass
class Phone:
    context: BrowserContext
    watch: Watch
    context_js: bool = True

    def new_page(self) -> Page:
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.watch.errors.append(str(exc)))
        return page

    def assert_clean(self, page: Page) -> None:
        """No CSP violation or script error so far, seen from the console and the page."""
        if self.context_js:
            seen = page.evaluate("window.__cspViolations || []")
            self.watch.csp.extend(f"{page.url}: {v}" for v in seen)
        self.watch.assert_clean()


def _phone(chromium: Browser, live_server: LiveServer, **options) -> Iterator[Phone]:
    watch = Watch()
    context = chromium.new_context(**MOBILE, base_url=live_server.url, **options)
    context.set_default_timeout(10_000)
    context.on("console", watch.on_console)
    js = options.get("java_script_enabled", True)
    if js:
        context.add_init_script(CSP_LISTENER)
    try:
        yield Phone(context, watch, js)
    finally:
        context.close()


@pytest.fixture
def phone(chromium: Browser, live_server: LiveServer) -> Iterator[Phone]:
    """A mobile browser context pointed at the live server."""
    yield from _phone(chromium, live_server)


@pytest.fixture
def phone_without_js(chromium: Browser, live_server: LiveServer) -> Iterator[Phone]:
    yield from _phone(chromium, live_server, java_script_enabled=False)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
