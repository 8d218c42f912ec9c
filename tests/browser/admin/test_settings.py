"""Settings in a real browser: generating a DKIM key shows the DNS record to publish, and a
changed sending rate (with a sender identity added through htmx) is shown in force, on a
phone as well as anywhere."""

from __future__ import annotations

from playwright.sync_api import expect

from mailer.accounts.models import Role

PHONE = {"width": 390, "height": 844}


def test_generating_a_dkim_key_shows_the_dns_record_to_publish(desk, artifacts):
    d = desk(Role.ADMIN)
    page = d.page
    page.click(".admin-nav >> text=Settings")
    page.fill("#f-domain", "news.shop.example")
    page.fill("#f-selector", "nov2026")
    page.click("button:has-text('Generate a 2048-bit key')")
    expect(page.locator(".flash.ok")).to_contain_text("Publish its DNS record")
    expect(page.locator("#dkim-name")).to_have_text("nov2026._domainkey.news.shop.example")
    value = page.locator("#dkim-value").input_value()
    assert value.startswith("v=DKIM1; k=rsa; p=MII") and len(value) > 255
    page.click("text=As a zone-file line")
    zone = page.locator("#dkim-zone").inner_text()
    assert zone.startswith('nov2026._domainkey.news.shop.example. IN TXT ( "v=DKIM1')
    assert zone.count('"') == 4  # two strings of at most 255 characters
    expect(page.locator("#dkim")).to_contain_text("does not look the record up")

    # Rotation asks first, then the old key is listed for later deletion.
    page.fill("#f-selector", "dec2026")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Generate a 2048-bit key')")
    expect(page.locator("#dkim-name")).to_have_text("dec2026._domainkey.news.shop.example")
    expect(page.locator("#dkim table")).to_contain_text("nov2026._domainkey.news.shop.example")
    (artifacts / "admin").mkdir(exist_ok=True)
    page.locator("#dkim").screenshot(path=str(artifacts / "admin" / "settings-dkim-record.png"))
    d.assert_clean(page)


def test_on_a_phone_an_admin_adds_an_identity_and_changes_the_rate_limit(desk):
    d = desk(Role.ADMIN, viewport=PHONE)
    page = d.page
    page.goto("/admin/settings/")
    expect(page.locator("#rates-effective")).to_contain_text("no limit per second")

    rows = page.locator("fieldset.identity-row")
    expect(rows).to_have_count(1)
    # The environment's sender (noreply@localhost here) is no address to send campaigns from.
    rows.nth(0).locator("input[name$='-name']").fill("Shop news")
    rows.nth(0).locator("input[name$='-email']").fill("news@shop.example")
    page.click("text=Add an identity")
    expect(rows).to_have_count(2)
    rows.nth(1).locator("input[name$='-name']").fill("Shop support")
    rows.nth(1).locator("input[name$='-email']").fill("help@shop.example")
    page.click("button:has-text('Save identities')")
    expect(page.locator(".flash.ok")).to_contain_text("Sender identities saved")
    expect(rows).to_have_count(2)
    expect(rows.nth(1).locator("input[name$='-email']")).to_have_value("help@shop.example")

    page.fill("#f-per_second", "12")
    page.fill("#f-per_hour", "3000")
    page.click("button:has-text('Save sending rate')")
    expect(page.locator("#rates-effective")).to_have_text("12 per second, 3,000 per hour")
    expect(page.locator(".flash.ok")).to_contain_text("workers at their next job")
    expect(page.locator("#changes")).to_contain_text("per second: 12")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the settings page is {width}px wide on a phone"
    d.assert_clean(page)
