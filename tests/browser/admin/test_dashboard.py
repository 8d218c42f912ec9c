"""The dashboard in a real browser: the chart of the list's growth, each form's confirmation
rate, the latest campaign's figures, and the switch to 90 days."""

from __future__ import annotations

from playwright.sync_api import expect

from mailer.accounts.models import Role
from tests.admin.test_dashboard import make_population


def test_the_dashboard_shows_growth_and_each_forms_confirmation_rate(desk, session, artifacts):
    make_population(session)
    d = desk(Role.MARKETER)
    page = d.page  # signed in, on the dashboard
    chart = page.locator(".dash-growth svg.chart")
    expect(chart).to_be_visible()
    expect(chart.locator("polyline.series")).to_have_count(3)
    expect(page.locator(".dash-growth .legend")).to_contain_text("Unsubscribed")
    expect(page.locator("[data-total=new]")).to_have_text("3")
    rate = page.locator("tr[data-form=signup]")
    expect(rate.locator(".rate")).to_have_text("66.7%")
    expect(rate.locator("progress")).to_have_attribute("max", "3")
    expect(page.locator(".dash-campaigns")).to_contain_text("June <news>")
    (artifacts / "admin").mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "admin" / "dashboard-data-1366.png"), full_page=True)

    page.click("text=Last 90 days")
    page.wait_for_url("**/admin/?days=90")
    expect(page.locator("[data-total=new]")).to_have_text("4")
    expect(page.locator("tr[data-form=signup] .rate")).to_have_text("75.0%")
    # The figures behind the chart, for reading aloud or copying.
    page.click(".dash-growth details summary")
    expect(page.locator(".dash-growth details tbody tr")).to_have_count(90)
    d.assert_clean(page)
