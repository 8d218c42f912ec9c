"""The hosted sign-up form on a phone, in real headless Chromium against the live app.

A 375px-wide touch screen: no sideways scrolling, tap targets of at least 44px, an email field
the phone's keyboard and autofill understand, nothing ticked for the visitor, and the whole
double opt-in journey working with and without JavaScript, inside the app's own CSP.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from mailer.subscribers.models import Subscriber, SubscriberStatus, SubscriptionStatus
from tests import signups
from tests.factories import make_form
from tests.inbox import link

pytestmark = pytest.mark.browser

MIN_TAP = 44  # CSS pixels: Apple HIG and WCAG 2.5.5
PHONE_WIDTH = 375

# Every visible thing a finger may need to hit. Checkboxes and radios are measured through the
# label that wraps them (the label is the tap target); the honeypot is off-screen on purpose
# and is reported separately.
TAP_TARGETS_JS = """
() => {
  const targets = [];
  const describe = (el) => {
    const text = (el.innerText || el.value || el.getAttribute('aria-label') || '').trim();
    const id = el.id ? '#' + el.id : '';
    const name = el.getAttribute('name') ? `[name=${el.getAttribute('name')}]` : '';
    return `<${el.tagName.toLowerCase()}${id}${name}> ${text.slice(0, 40)}`;
  };
  const hidden = (el) => {
    if (el.closest('[aria-hidden="true"]')) return true;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    return style.display === 'none' || style.visibility === 'hidden'
      || box.width === 0 || box.height === 0;
  };
  const seen = new Set();
  const add = (el) => {
    if (seen.has(el) || hidden(el)) return;
    seen.add(el);
    const box = el.getBoundingClientRect();
    targets.push({what: describe(el), width: box.width, height: box.height});
  };
  for (const el of document.querySelectorAll('input, select, textarea, button, a[href], label')) {
    if (el.matches('input[type=hidden]')) continue;
    if (el.matches('input[type=checkbox], input[type=radio]')) {
      const label = el.closest('label');
      if (label) { add(label); } else { add(el); }
      continue;
    }
    if (el.matches('label') && !el.querySelector('input[type=checkbox], input[type=radio]')) {
      continue;  // a plain caption label ("Email address"); its field is measured itself
    }
    add(el);
  }
  return targets;
}
"""


def _subscriber(session, email: str = "ann@example.com") -> Subscriber | None:
    session.expire_all()
    return session.scalar(select(Subscriber).where(Subscriber.email == email))


def _assert_tap_targets(page: Page) -> None:
    targets = page.evaluate(TAP_TARGETS_JS)
    assert targets, "no interactive elements found"
    small = [t for t in targets if t["height"] < MIN_TAP]
    assert not small, f"tap targets under {MIN_TAP}px tall on {page.url}:\n" + "\n".join(
        f"  {t['what']}: {t['width']:.0f}x{t['height']:.0f}" for t in small
    )


def _assert_no_horizontal_overflow(page: Page) -> None:
    widths = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
    )
    # A phone zooms out to fit content wider than the screen, which widens the layout viewport
    # (innerWidth) to match: scrollWidth <= innerWidth alone would then pass on a broken page.
    assert widths["inner"] == PHONE_WIDTH, (
        f"the layout viewport grew past the {PHONE_WIDTH}px screen on {page.url}: "
        f"something is too wide: {widths}"
    )
    assert widths["scroll"] <= widths["inner"], f"the page scrolls sideways on {page.url}: {widths}"


def test_hosted_form_on_a_phone(phone, live_server, session, artifacts):
    make_form(session, topics=("news", "offers"))
    session.commit()
    page = phone.new_page()
    response = page.goto("/subscribe/news")
    assert response is not None and response.status == 200
    assert "Content-Security-Policy" in {k.title(): v for k, v in response.headers.items()}
    page.wait_for_load_state("load")
    page.screenshot(path=str(artifacts / "subscribe-375.png"), full_page=True)

    # The stylesheet loaded and applied (without it the button would be "auto" tall).
    button = page.get_by_role("button", name="Subscribe")
    min_height = button.evaluate("b => getComputedStyle(b).minHeight")
    assert re.fullmatch(r"[\d.]+px", min_height) and float(min_height[:-2]) >= MIN_TAP, (
        f"stylesheet not applied (or button too short): min-height is {min_height!r}"
    )

    _assert_no_horizontal_overflow(page)

    email = page.locator("#email")
    assert email.get_attribute("type") == "email"
    assert email.get_attribute("autocomplete") == "email"
    email.focus()
    assert page.evaluate("document.activeElement && document.activeElement.id") == "email"

    _assert_tap_targets(page)

    # The honeypot is there for bots but out of sight and out of the tab order.
    honeypot = page.locator("input[name=website]")
    assert honeypot.count() == 1 and honeypot.get_attribute("tabindex") == "-1"
    box = honeypot.bounding_box()
    assert box is None or box["x"] + box["width"] <= 0, f"honeypot is on screen: {box}"

    # Nothing is ticked for the visitor: consent and topics are their own affirmative acts.
    consent = page.locator("input[name=consent]")
    assert consent.count() == 1 and not consent.is_checked()
    topics = page.locator("input[name=topics]")
    assert topics.count() == 2
    for i in range(topics.count()):
        assert not topics.nth(i).is_checked(), f"topic {i} is pre-checked"

    phone.assert_clean(page)


def test_double_opt_in_journey_in_the_browser(app, phone, live_server, session, work, inbox):
    make_form(session, topics=("news", "offers"))
    session.commit()
    page = phone.new_page()
    page.goto("/subscribe/news")
    phone.assert_clean(page)

    page.locator("#email").fill("ann@example.com")
    page.locator("#name").fill("Ann")
    # Tap the words, not the tiny box: the label is the target.
    page.locator("label.check", has=page.locator("input[name=topics][value=offers]")).tap()
    page.locator("label.check", has=page.locator("input[name=consent]")).tap()
    assert page.locator("input[name=consent]").is_checked()
    assert page.locator("input[value=offers]").is_checked()
    assert not page.locator("input[value=news]").is_checked()
    page.get_by_role("button", name="Subscribe").tap()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    phone.assert_clean(page)

    signups.drain(app)  # accepted into Redis; the workers write it
    ann = _subscriber(session)
    assert ann is not None and ann.status is SubscriberStatus.PENDING

    work()
    mail = inbox.only("ann@example.com")
    confirm_url = link(mail, "confirm")
    assert confirm_url.startswith("http://localhost/confirm/"), confirm_url
    response = page.goto(live_server.url + confirm_url.removeprefix("http://localhost"))
    assert response is not None and response.status == 200
    confirm = page.get_by_role("button", name="Yes, subscribe me")
    expect(confirm).to_be_visible()
    _assert_no_horizontal_overflow(page)
    _assert_tap_targets(page)
    phone.assert_clean(page)
    ann = _subscriber(session)
    assert ann.status is SubscriberStatus.PENDING, "opening the link must not confirm"
    assert [s.status for s in ann.subscriptions] == [SubscriptionStatus.PENDING]

    confirm.tap()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
    _assert_no_horizontal_overflow(page)
    _assert_tap_targets(page)
    phone.assert_clean(page)
    ann = _subscriber(session)
    assert ann.status is SubscriberStatus.ACTIVE and ann.confirmed_at is not None
    assert {s.topic.slug: s.status for s in ann.subscriptions} == {
        "offers": SubscriptionStatus.ACTIVE
    }


def test_form_works_without_javascript(app, phone_without_js, live_server, session):
    make_form(session, topics=("news", "offers"))
    session.commit()
    page = phone_without_js.new_page()
    response = page.goto("/subscribe/news")
    assert response is not None and response.status == 200
    page.locator("#email").fill("bob@example.com")
    page.locator("input[name=topics][value=news]").check()
    page.locator("input[name=topics][value=offers]").check()
    page.locator("input[name=consent]").check()
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    phone_without_js.assert_clean(page)

    signups.drain(app)
    bob = _subscriber(session, "bob@example.com")
    assert bob is not None and bob.status is SubscriberStatus.PENDING
    assert sorted(s.topic.slug for s in bob.subscriptions) == ["news", "offers"]


def test_the_csp_watch_catches_a_violation(app, phone, live_server):
    """The harness itself: a page breaking the app's CSP must be caught, or the checks above
    would pass for nothing."""
    app.add_url_rule(
        "/_test/inline",
        "test_inline",
        lambda: '<!doctype html><p style="color:red">x</p><script>document.title="ran"</script>',
    )
    page = phone.new_page()
    page.goto("/_test/inline")
    assert page.title() != "ran", "the inline script ran: the CSP was not enforced"
    with pytest.raises(AssertionError, match="Content-Security-Policy"):
        phone.assert_clean(page)
