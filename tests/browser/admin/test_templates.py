"""The MJML editor in a real browser: the preview follows the typing at desktop and phone
width, and a problem is shown at its line, marked in the gutter, and blocks the save."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from mailer.accounts.models import Role
from mailer.campaigns.models import Template


@pytest.fixture
def offline(live_server):
    """Only our own server answers: the MJML output's web fonts are not fetched."""

    def install(context) -> None:
        context.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())

    return install


def test_typing_updates_the_desktop_and_phone_previews_and_saves(desk, offline, session):
    d = desk(Role.MARKETER)
    offline(d.context)
    page = d.page
    page.goto("/admin/templates/new")
    desktop = page.frame_locator("iframe#frame-desktop")
    phone = page.frame_locator("iframe#frame-phone")
    # The starter renders for the sample subscriber as soon as the editor opens.
    desktop.get_by_text("Hello Sam,").wait_for()
    phone.get_by_text("Hello Sam,").wait_for()

    page.fill("#name", "Autumn news")
    source = page.input_value("#mjml").replace("Write your message here.", "Apples are in season.")
    page.fill("#mjml", source)
    desktop.get_by_text("Apples are in season.").wait_for()
    phone.get_by_text("Apples are in season.").wait_for()
    assert page.locator("#problems").inner_text().strip() == "No problems found."
    phone_width = page.locator("#frame-phone").bounding_box()["width"]
    desktop_width = page.locator("#frame-desktop").bounding_box()["width"]
    assert 370 <= phone_width <= 380 and desktop_width >= 600

    page.click("text=Save template")
    page.wait_for_url(re.compile(r"/admin/templates/\d+$"))
    assert "Template “Autumn news” saved." in page.locator(".flash").inner_text()
    saved = session.scalars(select(Template)).one()
    assert "Apples are in season." in saved.mjml and "\r" not in saved.mjml
    d.assert_clean(page)


def test_a_problem_is_shown_at_its_line_and_the_save_is_refused(desk, offline, session):
    d = desk(Role.MARKETER)
    offline(d.context)
    page = d.page
    page.goto("/admin/templates/new")
    page.frame_locator("iframe#frame-desktop").get_by_text("Hello Sam,").wait_for()
    page.fill("#name", "Broken")
    lines = page.input_value("#mjml").split("\n")
    line = next(i for i, text in enumerate(lines, 1) if "Write your message here." in text)
    lines[line - 1] = lines[line - 1].replace(
        "Write your message here.", "From {{ subscirber.city }}"
    )
    typed = "\n".join(lines)
    page.fill("#mjml", typed)

    problem = page.locator(f"#problems li[data-line='{line}']")
    problem.wait_for()
    assert "unknown variable 'subscirber'" in problem.inner_text()
    assert page.locator(".gutter .bad").all_inner_texts() == [str(line)]
    # The frames keep the last good preview meanwhile.
    page.frame_locator("iframe#frame-desktop").get_by_text("Hello Sam,").wait_for()
    problem.get_by_role("button", name=f"Line {line}").click()
    caret = page.evaluate(
        "() => { const a = document.querySelector('#mjml');"
        " return a.value.slice(0, a.selectionStart).split('\\n').length; }"
    )
    assert caret == line

    page.click("text=Save template")
    page.wait_for_load_state()
    assert page.locator(f"#problems li[data-line='{line}']").is_visible()
    assert page.input_value("#mjml") == typed  # nothing lost
    assert page.locator(".gutter .bad").all_inner_texts() == [str(line)]
    assert session.scalar(select(func.count()).select_from(Template)) == 0
    d.assert_clean(page)
