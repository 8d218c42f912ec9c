"""Subscriber pages in a real browser: search as you type and open a profile with its
consent timeline, set an attribute, import a CSV (upload, map, preview, start, watch the
progress bar reach the summary while a real RQ worker runs the job, the confirmation email
reaching the SMTP sink), and a compliance officer reading without edit controls."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from mailer.accounts.models import Role
from mailer.subscribers.models import Subscriber, SubscriberStatus
from tests.compliance.subjects import EMAIL, subscribed
from tests.factories import CONSENT, make_form

pytestmark = pytest.mark.browser

# Generous waits: the suite may share two cores with others; a wait ends as soon as it holds.
SLOW = 20_000

PAPER = "I want the Shop newsletter by email. Signed at the fair."


def test_search_open_a_profile_read_its_consent_and_set_an_attribute(
    desk, client, session, work, inbox
):
    subscribed(client, session, work, inbox)  # erin.eraseme@example.com, signed up and confirmed
    for email in ("ann@example.com", "bo@example.com"):
        session.add(Subscriber(email=email))
    session.commit()
    d = desk(Role.MARKETER)
    d.context.set_default_timeout(SLOW)
    page = d.page
    page.goto("/admin/subscribers/")
    expect(page.locator("#results tbody tr")).to_have_count(3, timeout=SLOW)

    page.fill("#q", "erase")  # no button: the list follows the typing
    expect(page.locator("#results tbody tr")).to_have_count(1, timeout=SLOW)
    assert page.url.endswith("?q=erase&status=&topic=")
    page.click(f"#results a:text('{EMAIL}')")
    expect(page.locator("h1")).to_have_text(EMAIL, timeout=SLOW)

    timeline = page.locator(".consent-timeline > li")
    expect(timeline).to_have_count(2, timeout=SLOW)
    expect(timeline.nth(0)).to_contain_text("requested", timeout=SLOW)
    expect(timeline.nth(1)).to_contain_text(
        "confirmed by the link in the confirmation email", timeout=SLOW
    )
    expect(timeline.nth(1)).to_contain_text("consent text version 1", timeout=SLOW)
    text = timeline.nth(1).locator("blockquote.consent-text")
    expect(text).to_be_hidden(timeout=SLOW)
    timeline.nth(1).locator("summary", has_text="Consent text shown").click()
    expect(text).to_have_text(CONSENT, timeout=SLOW)

    page.fill("#f-key", "visits")
    page.select_option("#f-kind", "number")
    page.fill("#f-value", "twelve")
    page.click("text=Save attribute")
    expect(page.locator(".errors")).to_contain_text("not a number", timeout=SLOW)
    expect(page.locator("#f-value")).to_have_value("twelve", timeout=SLOW)  # nothing is lost
    page.fill("#f-value", "12")
    page.click("text=Save attribute")
    expect(page.locator(".flash.ok")).to_have_text("Attribute visits saved.", timeout=SLOW)
    row = page.locator("tr[data-attribute=visits]")
    expect(row).to_contain_text("number", timeout=SLOW)
    expect(row).to_contain_text("12", timeout=SLOW)
    session.expire_all()
    erin = session.scalar(select(Subscriber).where(Subscriber.email == EMAIL))
    assert erin.attributes == {"visits": 12}
    d.assert_clean(page)


def test_a_csv_import_maps_previews_and_shows_its_progress_to_the_summary(
    desk, session, work, inbox, tmp_path
):
    make_form(session)
    sheet = tmp_path / "fair-contacts.csv"
    sheet.write_text(
        "E-mail;First name;City;Signed at;Text shown\n"
        f'ann@example.com;Ann;Oslo;2026-05-14T10:30:00+02:00;"{PAPER}"\n'
        "bo@example.com;Bo;Bergen;;\n"
        "not-an-address;Cy;;;\n",
        encoding="utf-8",
    )
    d = desk(Role.MARKETER)
    d.context.set_default_timeout(SLOW)
    page = d.page
    page.goto("/admin/subscribers/")
    page.click("text=Import CSV")
    page.set_input_files("#file", str(sheet))
    page.click("button:text('Upload')")
    expect(page.locator("h1")).to_have_text("Import: fair-contacts.csv", timeout=SLOW)

    # E-mail and First name are recognised; the person maps the rest.
    expect(page.locator("#f-column-0")).to_have_value("email", timeout=SLOW)
    expect(page.locator("#f-column-1")).to_have_value("name", timeout=SLOW)
    page.select_option("#f-column-2", "attribute")
    expect(page.locator("input[name=attr-2]")).to_have_value("city", timeout=SLOW)
    page.select_option("#f-column-3", "consent_at")
    page.select_option("#f-column-4", "consent_text")
    page.select_option("#f-form", label="news (news)")
    page.click("text=Save mapping and preview")

    rows = page.locator("table.preview-rows tbody tr")
    expect(rows).to_have_count(3, timeout=SLOW)
    expect(rows.nth(0)).to_contain_text("new, with evidence of consent", timeout=SLOW)
    expect(rows.nth(1)).to_contain_text("gets a confirmation email", timeout=SLOW)
    expect(rows.nth(2)).to_contain_text("E-mail: not a valid email address", timeout=SLOW)
    assert session.scalar(select(Subscriber)) is None  # nothing imported by a preview

    page.click("button:text('Start import')")
    status = page.locator("#import-status")
    expect(status.locator("progress")).to_be_visible(timeout=SLOW)
    expect(status).to_contain_text("Waiting for a worker", timeout=SLOW)

    work()  # a real RQ worker runs the import, then the confirmation email it queued
    expect(status.locator("h2")).to_contain_text("Import finished", timeout=SLOW)
    expect(status.locator("progress")).to_have_attribute("value", "3", timeout=SLOW)
    expect(status.locator("[data-count=created_active]")).to_have_text("1", timeout=SLOW)
    expect(status.locator("[data-count=created_pending]")).to_have_text("1", timeout=SLOW)
    expect(status.locator("[data-count=invalid]")).to_have_text("1", timeout=SLOW)
    expect(status.locator("table.rejected")).to_contain_text(
        "not a valid email address", timeout=SLOW
    )

    confirmation = inbox.only("bo@example.com")
    assert "/confirm/" in confirmation.get_body(preferencelist=("plain",)).get_content()
    assert inbox.messages("ann@example.com") == []  # proven consent: nothing to confirm
    session.expire_all()
    bo = session.scalar(select(Subscriber).where(Subscriber.email == "bo@example.com"))
    assert bo.status is SubscriberStatus.PENDING
    d.assert_clean(page)


def test_a_compliance_officer_reads_a_profile_without_edit_controls(desk, session):
    make_form(session)
    ann = Subscriber(email="ann@example.com", attributes={"plan": "pro"})
    session.add(ann)
    session.commit()
    d = desk(Role.COMPLIANCE)
    d.context.set_default_timeout(SLOW)
    page = d.page
    page.goto("/admin/subscribers/")
    expect(page.locator("#results tbody tr")).to_have_count(1, timeout=SLOW)
    expect(page.locator("text=Import CSV")).to_have_count(0, timeout=SLOW)
    page.click("#results a:text('ann@example.com')")
    expect(page.locator("tr[data-attribute=plan]")).to_contain_text("pro", timeout=SLOW)
    expect(page.locator("form[action*='/attributes']")).to_have_count(0, timeout=SLOW)
    expect(page.locator("text=Set an attribute")).to_have_count(0, timeout=SLOW)
    d.assert_clean(page)
