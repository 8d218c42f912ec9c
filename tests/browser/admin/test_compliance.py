"""The compliance officer's pages in a real browser: an audit export watched to the end without
a reload and downloaded, the ledger check finding a tampered row, a subject's proof, printable
receipt and erasure; and a visitor's own download and erasure on a phone."""

from __future__ import annotations

import csv
import json

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, text

from mailer.accounts.models import Role
from mailer.subscribers.models import Subscriber
from tests.compliance.subjects import EMAIL, subscribed

pytestmark = pytest.mark.browser


def test_an_export_reaches_done_without_a_reload_and_downloads(desk, client, session, work, inbox):
    subscribed(client, session, work, inbox)
    subscribed(client, session, work, inbox, email="other@example.com")
    d = desk(Role.COMPLIANCE)
    page = d.page
    page.goto("/admin/compliance/exports")
    page.check("input[name=types][value=confirmed]")
    page.click("text=Start the export")
    page.wait_for_url("**/admin/compliance/exports/*")
    progress = page.locator("#export-progress")
    expect(progress).to_have_attribute("data-status", "queued")
    page.evaluate("window.__samePage = true")  # gone if the page reloads

    work()  # a worker picks the job up while the page polls
    expect(progress).to_have_attribute("data-status", "done")
    bar = progress.locator("progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "2"
    assert page.evaluate("window.__samePage") is True

    with page.expect_download() as info:
        progress.locator("a", has_text="Download CSV").click()
    with open(info.value.path(), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["type"] for r in rows] == ["confirmed", "confirmed"]
    assert {r["email"] for r in rows} == {EMAIL, "other@example.com"}
    d.assert_clean(page)


def test_the_ledger_check_finds_a_tampered_row(desk, client, session, work, inbox, db_kind):
    subscribed(client, session, work, inbox)
    d = desk(Role.COMPLIANCE)
    page = d.page
    page.goto("/admin/compliance/")
    page.click("text=Verify the ledger now")
    expect(page.locator("#ledger-status .verdict")).to_contain_text("intact")

    if db_kind == "postgresql":
        session.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        session.execute(text("DROP TRIGGER IF EXISTS consent_events_no_update"))
    session.execute(text("UPDATE consent_events SET locale = 'da' WHERE seq = 2"))
    session.commit()

    page.click("text=Verify the ledger now")
    expect(page.locator("#ledger-status .verdict")).to_contain_text("broken")
    expect(page.locator("#ledger-status .problem")).to_contain_text("altered at seq 2")
    d.assert_clean(page)


def test_a_subject_request_proof_receipt_and_erasure(desk, client, session, work, inbox, artifacts):
    subscribed(client, session, work, inbox)
    d = desk(Role.COMPLIANCE)
    page = d.page
    page.goto("/admin/compliance/subjects")
    page.fill("#email", EMAIL)
    page.click("button:has-text('Find')")
    events = page.locator("table.events tbody tr")
    expect(events).to_have_count(2)
    expect(page.locator("figure.consent-text blockquote")).to_contain_text(
        "Yes, email me the newsletter."
    )
    shots = artifacts / "admin"
    shots.mkdir(exist_ok=True)
    page.screenshot(path=str(shots / "compliance-subject.png"), full_page=True)

    page.click("text=Printable consent receipt")
    expect(page.locator("h1")).to_have_text("Consent receipt")
    expect(page.locator(".receipt")).to_contain_text(EMAIL)
    page.emulate_media(media="print")
    expect(page.locator(".admin-bar")).to_be_hidden()
    expect(page.locator(".receipt")).to_be_visible()
    page.screenshot(path=str(shots / "compliance-receipt-print.png"), full_page=True)
    page.emulate_media(media="screen")
    d.assert_clean(page)

    page.go_back()
    page.click("text=Erase…")
    page.fill("#confirm", "someone.else@example.com")
    page.click("text=Erase this person's data")
    expect(page.locator("#confirm-error")).to_contain_text("type the same address again")
    page.fill("#confirm", EMAIL)
    page.click("text=Erase this person's data")
    expect(page.locator(".flash.ok")).to_contain_text("Erased.")
    expect(events).to_have_count(4)  # + withdrawn, erased
    expect(page.locator("table.events td.pii", has_text=EMAIL)).to_have_count(0)
    expect(page.locator("table.events tr[data-type=erased]")).to_have_count(1)
    expect(page.locator("text=Erase…")).to_have_count(0)
    expect(page.locator(".erased-note")).to_contain_text("Only the proof of consent is kept")
    d.assert_clean(page)


def test_a_visitor_downloads_and_erases_their_data_on_a_phone(
    app, phone, client, session, work, inbox
):
    subscribed(client, session, work, inbox)
    person = session.scalar(select(Subscriber).where(Subscriber.email == EMAIL))
    url = app.extensions["mailer.delivery"].links.preferences(person.id)
    page = phone.new_page()
    page.goto(url.removeprefix("http://localhost"))

    with page.expect_download() as info:
        page.click("text=Download my data (JSON)")
    with open(info.value.path(), encoding="utf-8") as f:
        document = json.load(f)
    assert document["email"] == EMAIL and len(document["consent_events"]) == 2
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    page.click("text=Erase my data")
    expect(page.locator("h1")).to_have_text("Erase my data")
    page.click("text=Yes, erase my data")
    expect(page.locator("h1")).to_have_text("Your data has been erased")
    expect(page.locator("main")).to_contain_text("What we keep, and why")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    session.expire_all()
    assert session.scalar(select(Subscriber.id).where(Subscriber.email == EMAIL)) is None
    phone.assert_clean(page)
