"""The segment builder in a real browser: a marketer builds rules with a nested group by
clicking and typing, watches the live count follow, saves, reopens and finds the same rules;
a value that does not fit shows its error at its condition; on a phone nothing overflows."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import select

from mailer.accounts.models import Role
from mailer.segments import service
from mailer.segments.models import Segment
from mailer.segments.rules import validate_tree
from tests.admin.test_segments_pages import NESTED_TREE, make_people


def count(page: Page) -> object:
    return expect(page.locator("#member-count"))


def test_a_marketer_builds_a_nested_segment_saves_and_reopens_it(desk, session, artifacts):
    make_people(session)
    d = desk(Role.MARKETER)
    page = d.page
    page.click(".admin-nav >> text=Segments")
    page.click("text=New segment")
    count(page).to_have_text("5")

    # Example.org addresses...
    page.click("button[value='add-cond:r']")
    page.select_option("select[name='r.0-field']", "email_domain")
    expect(page.locator("select[name='r.0-op']")).to_have_value("eq")
    page.fill("input[name='r.0-value']", "example.org")
    count(page).to_have_text("3")

    # ...that are on the pro plan or opened at least three times.
    page.click("button[value='add-group:r']")
    expect(page.locator("select[name='r.1-mode']")).to_have_value("any")
    page.select_option("select[name='r.1.0-field']", "attribute:plan")
    expect(page.locator("select[name='r.1.0-type']")).to_have_value("string")
    page.fill("input[name='r.1.0-value']", "pro")
    count(page).to_have_text("1")
    page.click("button[value='add-cond:r.1']")
    page.select_option("select[name='r.1.1-field']", "open_count")
    expect(page.locator("select[name='r.1.1-op']")).to_have_value("gte")
    page.fill("input[name='r.1.1-value']", "3")
    count(page).to_have_text("2")
    expect(page.locator(".seg-sample")).to_contain_text("dot@example.org")
    expect(page.locator(".seg-sample")).not_to_contain_text("bob@example.org")

    page.fill("#name", "Engaged at example.org")
    page.click("button[value='save']")
    page.wait_for_url("**/admin/segments/")
    expect(page.locator(".flash.ok")).to_contain_text("saved")
    saved = session.scalars(select(Segment)).one()
    assert saved.rules == validate_tree(NESTED_TREE)

    page.get_by_role("link", name="Engaged at example.org").click()
    expect(page.locator("select[name='r.0-field']")).to_have_value("email_domain")
    expect(page.locator("input[name='r.0-value']")).to_have_value("example.org")
    expect(page.locator("select[name='r.1-mode']")).to_have_value("any")
    expect(page.locator("select[name='r.1.0-field']")).to_have_value("attribute:plan")
    expect(page.locator("input[name='r.1.0-value']")).to_have_value("pro")
    expect(page.locator("select[name='r.1.1-op']")).to_have_value("gte")
    expect(page.locator("input[name='r.1.1-value']")).to_have_value("3")
    count(page).to_have_text("2")
    (artifacts / "admin").mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "admin" / "segment-builder-1366.png"), full_page=True)

    # A value that does not fit: the error sits at its condition, the count waits.
    page.fill("input[name='r.1.1-value']", "lots")
    error = page.locator("#errors-r-1-1 [data-input=value]")
    expect(error).to_have_text("Not a valid integer.")
    expect(page.locator("#errors-r-0")).to_be_empty()
    expect(page.locator(".seg-count")).to_contain_text("Fix the marked conditions")
    page.fill("input[name='r.1.1-value']", "4")
    count(page).to_have_text("2")
    expect(error).to_have_count(0)
    d.assert_clean(page)


def test_removing_and_negating_in_the_browser(desk, session):
    make_people(session)
    segment = service.create(session, "Engaged", NESTED_TREE)
    d = desk(Role.MARKETER)
    page = d.page
    page.goto(f"/admin/segments/{segment.id}")
    count(page).to_have_text("2")
    page.select_option("select[name='r.1-mode']", "none")  # example.org, neither pro nor keen
    count(page).to_have_text("1")
    expect(page.locator(".seg-sample")).to_contain_text("bob@example.org")
    page.click("button[value='remove:r.1']")
    expect(page.locator("select[name='r.1-mode']")).to_have_count(0)
    count(page).to_have_text("3")
    page.select_option("select[name='r.0-op']", "not:eq")
    count(page).to_have_text("2")  # the shop.test pair
    d.assert_clean(page)


def test_the_builder_fits_a_phone(desk, session, artifacts):
    make_people(session)
    segment = service.create(session, "Engaged", NESTED_TREE)
    d = desk(Role.MARKETER, viewport={"width": 375, "height": 812})
    page = d.page
    page.goto(f"/admin/segments/{segment.id}")
    count(page).to_have_text("2")
    width = page.evaluate("document.documentElement.scrollWidth")
    (artifacts / "admin").mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "admin" / "segment-builder-375.png"), full_page=True)
    assert width <= 375, f"the builder is {width}px wide on a 375px screen"
    d.assert_clean(page)
