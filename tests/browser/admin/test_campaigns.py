"""Campaigns in a real browser: the guided flow with the live audience count and the review
checklist, sending while the progress bar runs to "finished" without a reload, pause and
resume, and the report once opens and clicks were flushed.

Jobs run through the real RQ worker (`work`) in the test while the page polls the live
server; mail goes to the SMTP sink on loopback (`inbox`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect
from sqlalchemy import update

from mailer import tasks
from mailer.accounts.models import Role
from mailer.campaigns import lifecycle
from mailer.campaigns.models import Delivery, Template
from mailer.segments import service as segments
from tests.campaigns.conftest import MJML, make_audience, make_campaign
from tests.inbox import html_of

READER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"}


def _offline(context) -> None:
    """Only our own server answers: the MJML output's web fonts are not fetched."""
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())


def _mark(page) -> None:
    """A flag on the window that a reload would lose."""
    page.evaluate("window.__notReloaded = true")


def _not_reloaded(page) -> bool:
    return page.evaluate("window.__notReloaded === true")


def test_the_flow_sends_to_a_small_audience_and_the_bar_reaches_finished(
    desk, session, work, inbox
):
    make_audience(session, 3, "news", "reader")
    session.add(Template(name="Autumn", mjml=MJML))
    session.commit()
    segments.create(
        session,
        "Reader one",
        {"all": [{"field": "email", "op": "starts_with", "value": "reader1"}]},
    )
    d = desk(Role.MARKETER)
    _offline(d.context)
    page = d.page
    page.goto("/admin/campaigns/")
    page.click("text=New campaign")

    # 1. Content (the sender comes prefilled).
    page.fill("#name", "Autumn offer")
    page.fill("#subject", "Autumn offer for {{ subscriber.first_name }}")
    page.fill("#preheader", "Only this week")
    page.fill("#from_email", "news@shop.example")
    page.select_option("#template_id", label="Autumn")
    page.click("text=Save and continue")

    # 2. Audience: the count follows the choice before anything is saved.
    page.wait_for_url(re.compile(r"/audience$"))
    count = page.locator("#audience-count [data-count]")
    expect(count).to_have_text("3")
    _mark(page)
    page.select_option("#segment_id", label="Reader one")
    expect(count).to_have_text("1")
    page.select_option("#segment_id", label="Everyone subscribed to the topic")
    expect(count).to_have_text("3")
    assert _not_reloaded(page)
    page.click("text=Save and continue")

    # 3. Tracking, 4. Schedule: the defaults (tracked, sent after the review).
    page.wait_for_url(re.compile(r"/tracking$"))
    assert page.is_checked("#track_opens") and page.is_checked("#track_clicks")
    page.click("text=Save and continue")
    page.wait_for_url(re.compile(r"/schedule$"))
    assert page.is_checked("input[name=when][value=now]")
    page.click("text=Save and continue")

    # 5. Review: every blocking item passes; DKIM is advice.
    page.wait_for_url(re.compile(r"/review$"))
    checklist = page.locator(".review-checklist")
    assert checklist.locator("li.missing").count() == 0
    for item in ("subject", "from", "unsubscribe", "content", "audience"):
        expect(checklist.locator(f"li[data-item={item}]")).not_to_have_class("missing")
    expect(checklist.locator("li[data-item=dkim]")).to_have_class("advice")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Send now')")

    # The campaign page: the bar moves to "finished" while the page stays where it is.
    page.wait_for_url(re.compile(r"/admin/campaigns/\d+$"))
    progress = page.locator("#progress")
    expect(progress).to_have_attribute("data-status", "sending")
    _mark(page)
    work()
    expect(progress.locator("h2 .badge")).to_have_text("finished", timeout=15_000)
    assert _not_reloaded(page)
    bar = progress.locator("progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "3"
    expect(progress.locator("[data-count=sent] .value")).to_have_text("3")
    expect(progress.locator("[data-count=pending] .value")).to_have_text("0")
    assert progress.get_attribute("hx-trigger") is None  # polling stopped
    assert sorted(str(m["To"]) for m in inbox.messages()) == [
        f"Reader {i} <reader{i}@example.org>" for i in range(3)
    ]
    assert {m["Subject"] for m in inbox.messages()} == {
        f"Autumn offer for Reader{i}" for i in range(3)
    }
    d.assert_clean(page)


def test_pause_and_resume_from_the_campaign_page(desk, session, app, work, inbox):
    topic, _ = make_audience(session, 3)
    campaign = make_campaign(session, topic)
    with app.app_context():
        lifecycle.send_now(session, campaign.id)
    d = desk(Role.MARKETER)
    page = d.page
    page.goto(f"/admin/campaigns/{campaign.id}")
    progress = page.locator("#progress")
    expect(progress).to_have_attribute("data-status", "sending")

    progress.get_by_role("button", name="Pause").click()
    expect(page.locator(".flash.ok")).to_contain_text("Paused")
    expect(progress).to_have_attribute("data-status", "paused")
    work()  # the start job finds the campaign paused and sends nothing
    assert inbox.messages() == []

    progress.get_by_role("button", name="Resume").click()
    expect(page.locator(".flash.ok")).to_contain_text("Resumed")
    expect(progress).to_have_attribute("data-status", "sending")
    _mark(page)
    work()
    expect(progress.locator("h2 .badge")).to_have_text("finished", timeout=15_000)
    assert _not_reloaded(page)
    assert len(inbox.messages()) == 3
    d.assert_clean(page)


def test_the_report_shows_opens_and_clicks_after_the_flush(desk, session, app, client, work, inbox):
    topic, _ = make_audience(session, 3)
    campaign = make_campaign(session, topic)
    with app.app_context():
        lifecycle.send_now(session, campaign.id)
    work()
    # Read an hour later: hits within seconds of delivery are a machine's, not a person's.
    session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign.id)
        .values(sent_at=datetime.now(UTC) - timedelta(hours=1))
    )
    session.commit()
    for message in inbox.messages()[:2]:
        html = html_of(message)
        pixel = re.search(r'src="https?://[^/"]+(/t/o/[^"]+)"', html)[1]
        click = re.search(r'href="https?://[^/"]+(/t/c/[^"]+)"', html)[1]
        client.get(pixel, headers=READER)
        assert client.get(click.replace("&amp;", "&"), headers=READER).status_code == 302
    with app.app_context():
        tasks.enqueue(tasks.FLUSH_TRACKING)
    work()

    d = desk(Role.MARKETER)
    page = d.page
    page.goto(f"/admin/campaigns/{campaign.id}")
    page.click("text=Report")
    page.wait_for_url(re.compile(r"/report$"))
    expect(page.locator("[data-figure=human-opens] .value")).to_have_text("2")
    expect(page.locator("[data-figure=clicks] .value")).to_have_text("2")
    expect(page.locator("[data-figure=sent] .value")).to_have_text("3")
    assert page.locator("svg.chart").count() == 3
    expect(page.locator("svg.chart title").first).to_have_text("Opens per hour (UTC)")
    link = page.locator("table.links tbody tr").first
    expect(link.locator("td.url")).to_have_text("shop.example/offer?src=mail")
    expect(link.locator("td.num").first).to_have_text("2")
    page.click("text=Opens per hour (table)")
    opens_table = page.locator("details[open] table")
    expect(opens_table.locator("tbody tr td.num").first).to_have_text("2")
    d.assert_clean(page)
