"""Every admin page that takes no argument, opened by an admin at 1280 px and at 390 px: no
horizontal overflow on a phone, no CSP violation or script error, and a screenshot of each in
test-artifacts/admin/ for a person to look at. Pages are found from the app's routes, so a new
page is covered as soon as it exists."""

from __future__ import annotations

from mailer.accounts.models import Role
from tests.factories import make_form

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def _main_pages(app) -> list[str]:
    pages = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if getattr(view, "admin_roles", None) is None or rule.arguments:
            continue
        if "GET" in rule.methods and not rule.endpoint.split(".")[-1].startswith("_"):
            pages.append(rule.rule)
    return sorted(set(pages))


def test_every_admin_page_fits_a_phone_and_keeps_its_csp(app, session, desk, artifacts):
    make_form(session)  # something to list
    pages = _main_pages(app)
    assert "/admin/" in pages
    folder = artifacts / "admin"
    folder.mkdir(exist_ok=True)
    problems = []
    for size, viewport in WIDTHS.items():
        d = desk(Role.ADMIN, viewport=viewport)
        page = d.page
        for path in pages:
            response = page.goto(path)
            assert response is not None and response.status < 500, f"{path}: {response}"
            page.wait_for_load_state("networkidle")
            name = path.strip("/").replace("/", "_") or "root"
            page.screenshot(path=str(folder / f"{name}-{viewport['width']}.png"), full_page=True)
            if size == "phone":
                wide = page.evaluate("document.documentElement.scrollWidth")
                if wide > viewport["width"]:
                    problems.append(f"{path} is {wide}px wide at {viewport['width']}px")
            d.assert_clean(page)  # per page: the CSP listener lives in each document
    assert not problems, "\n".join(problems)
