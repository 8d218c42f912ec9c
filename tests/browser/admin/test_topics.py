"""Topics and forms in a real browser: a changed consent text becomes a new version while
the old one stays readable; the hosted form previewed at phone width inside the admin page
(framed by our own origin, under both pages' CSP); the embed snippet copied."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from mailer.accounts.models import Role
from tests.factories import CONSENT, make_form

pytestmark = pytest.mark.browser

# Generous waits: the suite may share two cores with others; a wait ends as soon as it holds.
SLOW = 20_000

NEW_TEXT = "Yes, email me the weekly newsletter. I can unsubscribe at any time."


def test_a_changed_consent_text_is_a_new_version_and_the_old_one_stays_readable(desk, session):
    make_form(session)
    d = desk(Role.MARKETER)
    d.context.set_default_timeout(SLOW)
    page = d.page
    page.goto("/admin/topics/")
    page.click(".tabs >> text=Sign-up forms")
    page.click("table.list a:text('news')")
    expect(page.locator("h1")).to_have_text("Form news", timeout=SLOW)

    page.fill("#f-consent_text", NEW_TEXT)
    page.click("button:text('Save form')")
    expect(page.locator(".flash.ok")).to_contain_text("consent text version 2", timeout=SLOW)

    versions = page.locator("li.version")
    expect(versions).to_have_count(2, timeout=SLOW)
    expect(versions.nth(0)).to_contain_text("Version 2", timeout=SLOW)
    expect(versions.nth(0)).to_contain_text("current", timeout=SLOW)
    expect(versions.nth(0).locator("blockquote")).to_have_text(NEW_TEXT, timeout=SLOW)
    old = versions.nth(1).locator("blockquote")
    expect(old).to_be_hidden(timeout=SLOW)
    versions.nth(1).locator("summary").click()
    expect(old).to_have_text(CONSENT, timeout=SLOW)
    expect(versions.nth(1).locator(".sha")).to_contain_text("SHA-256 ", timeout=SLOW)
    d.assert_clean(page)


def test_the_phone_preview_shows_the_hosted_form_and_the_snippet_copies(desk, session):
    make_form(session)
    d = desk(Role.MARKETER)
    d.context.set_default_timeout(SLOW)
    d.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = d.page
    page.goto("/admin/topics/forms/")
    page.click("table.list a:text('news')")

    frame_element = page.locator("iframe.preview.phone")
    frame_element.scroll_into_view_if_needed()
    box = frame_element.bounding_box()
    assert box is not None and round(box["width"]) == 375
    frame = page.frame_locator("iframe.preview.phone")
    expect(frame.locator("input[type=email]")).to_be_visible(timeout=SLOW)
    expect(frame.locator("body")).to_contain_text(CONSENT, timeout=SLOW)
    inner = next(f for f in page.frames if f.url.endswith("/subscribe/news"))
    assert inner.evaluate("window.__cspViolations") == []
    assert inner.evaluate("document.documentElement.scrollWidth") <= 375  # fits a phone

    snippet = page.locator("#embed-snippet")
    expect(snippet).to_have_attribute("readonly", "", timeout=SLOW)
    button = page.locator("button[data-copy='#embed-snippet']")
    button.click()
    expect(button).to_have_text("Copied", timeout=SLOW)
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == snippet.input_value() and 'action="http://localhost/subscribe/news"' in copied
    d.assert_clean(page)
