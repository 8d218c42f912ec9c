"""The admin frame in a real browser: sign-in lands on the dashboard, the menu shows what the
role may open, htmx loads under the strict CSP, and a phone can use the menu."""

from __future__ import annotations

from mailer.accounts.models import Role


def test_sign_in_lands_on_the_dashboard_with_a_working_page(desk):
    d = desk(Role.ADMIN)
    page = d.page
    assert page.locator("h1").inner_text() == "Dashboard"
    assert page.evaluate("typeof window.htmx") == "object", "htmx did not load"
    assert page.get_attribute(".admin-nav a[aria-current=page]", "href") == "/admin/"
    d.assert_clean(page)


def test_the_menu_shows_only_what_the_role_may_open(desk):
    page = desk(Role.COMPLIANCE).page
    labels = page.locator(".admin-nav a").all_inner_texts()
    assert "Dashboard" in labels
    assert "Campaigns" not in labels and "Settings" not in labels


def test_sign_out_ends_the_session(desk):
    d = desk(Role.MARKETER)
    page = d.page
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    page.goto("/admin/")
    assert "/login" in page.url
    d.assert_clean(page)


def test_on_a_phone_the_page_does_not_scroll_sideways(desk):
    d = desk(Role.ADMIN, viewport={"width": 375, "height": 812})
    page = d.page
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width}px wide on a 375px screen"
    d.assert_clean(page)
