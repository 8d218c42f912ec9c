"""The signed links in our emails: forged, expired, or made for something else, they do nothing."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import itsdangerous
import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from mailer.consent.models import ConsentEvent
from mailer.database import utcnow
from mailer.delivery.models import OutboundMessage
from mailer.subscribers.links import Links
from mailer.subscribers.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from mailer.tokens import Purpose
from tests import signups
from tests.factories import make_form
from tests.inbox import link

SECRET = "test-secret-key-not-for-production"
ORIGIN = {"Origin": "https://shop.example"}
BASE = "http://localhost"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class _EightDaysAgo(itsdangerous.TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 8 * 24 * 3600


def _expired_confirm_token(message_id: int) -> str:
    serializer = URLSafeTimedSerializer(SECRET, salt=Purpose.CONFIRM.value, signer=_EightDaysAgo)
    return serializer.dumps({"m": message_id})


# --- helpers -------------------------------------------------------------------------------


def _sign_up(client, work, inbox, email="ann@example.com"):
    """A visitor signs up; returns the confirmation email as it arrived."""
    response = client.post(
        "/subscribe/news", json={"email": email, "consent": True}, headers=ORIGIN
    )
    assert response.status_code == 202
    signups.drain(client.application)
    work()
    return inbox.only(email)


def _path(url: str) -> str:
    assert url.startswith(BASE), url
    return url.removeprefix(BASE)


def _csrf(client, path="/subscribe/news") -> str:
    return CSRF.search(client.get(path).get_data(as_text=True)).group(1)


def _confirm(client, confirm_path: str):
    page = client.get(confirm_path)
    assert page.status_code == 200
    csrf = CSRF.search(page.get_data(as_text=True)).group(1)
    return client.post(confirm_path, data={"csrf_token": csrf})


def _subscriber(session, email="ann@example.com") -> Subscriber:
    session.expire_all()
    return session.scalar(select(Subscriber).where(Subscriber.email == email))


def _state(session):
    """Everything a click could change: the ledger, the statuses, the mail queued."""
    session.expire_all()
    events = [
        (e.id, e.type) for e in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))
    ]
    subscribers = [
        (s.id, s.status, s.confirmed_at, s.unsubscribed_at, s.confirmation_sent_at)
        for s in session.scalars(select(Subscriber).order_by(Subscriber.id))
    ]
    subscriptions = [
        (s.subscriber_id, s.topic_id, s.status, s.confirmed_at)
        for s in session.scalars(select(Subscription).order_by(Subscription.id))
    ]
    messages = [m.id for m in session.scalars(select(OutboundMessage).order_by(OutboundMessage.id))]
    return events, subscribers, subscriptions, messages


def _statuses(session, email="ann@example.com") -> list[SubscriptionStatus]:
    return [s.status for s in _subscriber(session, email).subscriptions]


def _message_id(mail) -> int:
    return int(str(mail["X-Mailer-Message"]))


def _links(client) -> Links:
    with client.application.app_context():
        return Links(client.application.extensions["mailer.tokens"], "")


def _age_last_mail(session, days: int = 8) -> None:
    """The confirmation went out `days` ago (as it did for a link that has since expired)."""
    session.execute(update(Subscriber).values(confirmation_sent_at=utcnow() - timedelta(days=days)))
    session.commit()


def _is_bad_link_page(response) -> bool:
    html = response.get_data(as_text=True)
    return "This link does not work" in html and "Send me a new link" not in html


# --- tampered and forged confirmation links ------------------------------------------------


def _tamper_signature(token: str) -> str:
    head, sig = token.rsplit(".", 1)
    # A character in the middle: every one of its bits is part of the signature.
    c = "A" if sig[10] != "A" else "B"
    return f"{head}.{sig[:10]}{c}{sig[11:]}"


def _tamper_payload(token: str, message_id: int) -> str:
    """Another message's id spliced in, the original timestamp and signature kept."""
    other = URLSafeTimedSerializer(SECRET, salt=Purpose.CONFIRM.value).dumps({"m": message_id})
    _payload, stamp, sig = token.split(".")
    return f"{other.split('.')[0]}.{stamp}.{sig}"


TAMPERINGS = {
    "signature-changed": lambda t, m: _tamper_signature(t),
    "payload-changed": lambda t, m: _tamper_payload(t, m + 1),
    "truncated": lambda t, m: t[:-5],
    "signature-removed": lambda t, m: t.rsplit(".", 1)[0],
    "other-secret": lambda t, m: URLSafeTimedSerializer(
        "somebody-elses-secret", salt=Purpose.CONFIRM.value
    ).dumps({"m": m}),
    "no-salt": lambda t, m: URLSafeTimedSerializer(SECRET).dumps({"m": m}),
    "garbage": lambda t, m: "not-a-token",
    "dots": lambda t, m: "...",
    "very-long": lambda t, m: t + "A" * 2000,
}


@pytest.mark.parametrize("how", sorted(TAMPERINGS))
def test_tampered_confirm_link_does_not_work(client, session, work, inbox, how):
    make_form(session)
    mail = _sign_up(client, work, inbox)
    token = _path(link(mail, "confirm")).removeprefix("/confirm/")
    bad = TAMPERINGS[how](token, _message_id(mail))
    assert bad != token
    before = _state(session)

    page = client.get(f"/confirm/{bad}")
    assert page.status_code == 400
    assert _is_bad_link_page(page)
    csrf = _csrf(client)
    posted = client.post(f"/confirm/{bad}", data={"csrf_token": csrf})
    assert posted.status_code == 400 and _is_bad_link_page(posted)
    resent = client.post("/confirm/resend", data={"csrf_token": csrf, "token": bad})
    assert resent.status_code == 400 and _is_bad_link_page(resent)

    assert _state(session) == before
    assert _statuses(session) == [SubscriptionStatus.PENDING]
    inbox.clear()
    work()
    assert inbox.messages() == []
    # The real link still works afterwards.
    assert "You are subscribed" in _confirm(client, f"/confirm/{token}").get_data(as_text=True)


# --- expired confirmation links ------------------------------------------------------------


def _resend_form(response) -> dict[str, str]:
    html = response.get_data(as_text=True)
    form = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', html, re.S)
    assert form, html
    assert "Send me a new link" in form.group(2)
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))
    return {"action": form.group(1), **fields}


def test_expired_confirm_link_offers_a_new_one_that_works(client, session, work, inbox):
    make_form(session)
    mail = _sign_up(client, work, inbox)
    _age_last_mail(session)
    expired = _expired_confirm_token(_message_id(mail))
    before = _state(session)

    page = client.get(f"/confirm/{expired}")
    assert page.status_code == 410
    assert "This link has expired" in page.get_data(as_text=True)
    form = _resend_form(page)
    assert form["action"] == "/confirm/resend" and form["token"] == expired

    # Pressing the old button (POST) on the expired link confirms nothing.
    posted = client.post(f"/confirm/{expired}", data={"csrf_token": form["csrf_token"]})
    assert posted.status_code == 410 and "Send me a new link" in posted.get_data(as_text=True)
    assert _state(session) == before

    inbox.clear()
    resent = client.post(
        form["action"], data={"csrf_token": form["csrf_token"], "token": form["token"]}
    )
    assert resent.status_code == 200
    assert "Check your inbox" in resent.get_data(as_text=True)
    assert _statuses(session) == [SubscriptionStatus.PENDING]
    work()
    fresh = inbox.only("ann@example.com")
    assert fresh["Subject"] == "Please confirm your subscription"
    assert _message_id(fresh) != _message_id(mail)
    fresh_path = _path(link(fresh, "confirm"))
    assert fresh_path != f"/confirm/{expired}"

    confirmed = _confirm(client, fresh_path)
    assert confirmed.status_code == 200
    assert "You are subscribed" in confirmed.get_data(as_text=True)
    ann = _subscriber(session)
    assert ann.status is SubscriberStatus.ACTIVE
    assert _statuses(session) == [SubscriptionStatus.ACTIVE]


def test_resend_sends_one_email_per_window(client, session, work, inbox):
    make_form(session)
    mail = _sign_up(client, work, inbox)
    _age_last_mail(session)
    page = client.get(f"/confirm/{_expired_confirm_token(_message_id(mail))}")
    form = _resend_form(page)
    inbox.clear()
    answers = [
        client.post(form["action"], data={"csrf_token": form["csrf_token"], "token": form["token"]})
        for _ in range(4)
    ]
    # The same answer every time, whether or not a message went out.
    assert {r.status_code for r in answers} == {200}
    assert len({r.get_data(as_text=True) for r in answers}) == 1
    work()
    assert len(inbox.messages()) == 1


def test_resend_right_after_signup_sends_nothing(client, session, work, inbox):
    """The link expired, but we mailed this address minutes ago: no second email yet."""
    make_form(session)
    mail = _sign_up(client, work, inbox)
    page = client.get(f"/confirm/{_expired_confirm_token(_message_id(mail))}")
    form = _resend_form(page)
    inbox.clear()
    resent = client.post(
        form["action"], data={"csrf_token": form["csrf_token"], "token": form["token"]}
    )
    assert resent.status_code == 200 and "Check your inbox" in resent.get_data(as_text=True)
    work()
    assert inbox.messages() == []


def test_resend_needs_the_csrf_token(client, session, work, inbox):
    make_form(session)
    mail = _sign_up(client, work, inbox)
    _age_last_mail(session)
    form = _resend_form(client.get(f"/confirm/{_expired_confirm_token(_message_id(mail))}"))
    inbox.clear()
    response = client.post(form["action"], data={"token": form["token"]})
    assert response.status_code == 400
    assert 'data-field="csrf_token"' in response.get_data(as_text=True)
    work()
    assert inbox.messages() == []


def test_resend_is_rate_limited(make_settings, make_app, session, work, inbox):
    app = make_app(make_settings(MAILER_RESEND_RATE_LIMIT="2/minute"))
    client = app.test_client()
    make_form(session)
    mail = _sign_up(client, work, inbox)
    _age_last_mail(session)
    form = _resend_form(client.get(f"/confirm/{_expired_confirm_token(_message_id(mail))}"))
    data = {"csrf_token": form["csrf_token"], "token": form["token"]}
    inbox.clear()
    answers = [client.post(form["action"], data=data) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert 'data-field="request"' in answers[-1].get_data(as_text=True)
    assert "Too many attempts" in answers[-1].get_data(as_text=True)
    work()
    assert len(inbox.messages()) == 1


# --- a token made for one thing is refused for another -------------------------------------


def _other_purpose_tokens(client, subscriber_id: int, message_id: int) -> dict[str, str]:
    """Tokens signed with our own secret, each for a purpose, each shaped like every payload."""
    tokens = client.application.extensions["mailer.tokens"]
    shapes = {"s": subscriber_id, "m": message_id, "t": None}
    return {purpose.name: tokens.dumps(purpose, shapes) for purpose in Purpose}


def test_unsubscribe_and_other_tokens_do_not_confirm(client, session, work, inbox):
    make_form(session)
    mail = _sign_up(client, work, inbox)
    ann = _subscriber(session)
    unsubscribe = _path(str(mail["List-Unsubscribe"]).strip("<>")).removeprefix("/unsubscribe/")
    preferences = _path(BASE + _links(client).preferences(ann.id)).removeprefix("/preferences/")
    started = re.search(
        r'name="started" value="([^"]+)"', client.get("/subscribe/news").get_data(as_text=True)
    ).group(1)
    wrong = {
        "unsubscribe-from-the-email": unsubscribe,
        "preferences": preferences,
        "form-started": started,
        **{
            name: t
            for name, t in _other_purpose_tokens(client, ann.id, _message_id(mail)).items()
            if name != "CONFIRM"
        },
    }
    csrf = _csrf(client)
    before = _state(session)
    for name, token in wrong.items():
        page = client.get(f"/confirm/{token}")
        assert page.status_code == 400, name
        assert _is_bad_link_page(page), name
        posted = client.post(f"/confirm/{token}", data={"csrf_token": csrf})
        assert posted.status_code == 400, name
        assert _is_bad_link_page(posted), name
        resent = client.post("/confirm/resend", data={"csrf_token": csrf, "token": token})
        assert resent.status_code == 400, name
    assert _state(session) == before
    assert _statuses(session) == [SubscriptionStatus.PENDING]


def test_confirm_and_other_tokens_do_not_unsubscribe_or_open_preferences(
    client, session, work, inbox
):
    make_form(session)
    mail = _sign_up(client, work, inbox)
    confirm_path = _path(link(mail, "confirm"))
    assert "You are subscribed" in _confirm(client, confirm_path).get_data(as_text=True)
    ann = _subscriber(session)
    assert ann.status is SubscriberStatus.ACTIVE
    confirm_token = confirm_path.removeprefix("/confirm/")
    preferences = _links(client).preferences(ann.id).removeprefix("/preferences/")
    unsubscribe = _path(str(mail["List-Unsubscribe"]).strip("<>")).removeprefix("/unsubscribe/")
    minted = _other_purpose_tokens(client, ann.id, _message_id(mail))
    csrf = _csrf(client)

    not_for_unsubscribe = {
        "confirm-from-the-email": confirm_token,
        "preferences": preferences,
        **{n: t for n, t in minted.items() if n != "UNSUBSCRIBE"},
    }
    not_for_preferences = {
        "confirm-from-the-email": confirm_token,
        "unsubscribe-from-the-email": unsubscribe,
        **{n: t for n, t in minted.items() if n != "PREFERENCES"},
    }
    before = _state(session)
    for name, token in not_for_unsubscribe.items():
        for method in ("GET", "POST"):
            response = client.open(
                f"/unsubscribe/{token}",
                method=method,
                data={"List-Unsubscribe": "One-Click"} if method == "POST" else None,
            )
            assert response.status_code == 400, (name, method)
            assert _is_bad_link_page(response), (name, method)
    for name, token in not_for_preferences.items():
        page = client.get(f"/preferences/{token}")
        assert page.status_code == 400, name
        assert "ann@example.com" not in page.get_data(as_text=True)
        for action in ("unsubscribe_all", "save"):
            posted = client.post(
                f"/preferences/{token}", data={"csrf_token": csrf, "action": action, "topics": []}
            )
            assert posted.status_code == 400, (name, action)
            assert _is_bad_link_page(posted), (name, action)
    assert _state(session) == before
    assert _statuses(session) == [SubscriptionStatus.ACTIVE]
    # The right tokens in the right places still work.
    assert client.get(f"/preferences/{preferences}").status_code == 200
    assert client.post(f"/unsubscribe/{unsubscribe}").status_code == 200
    assert _statuses(session) == [SubscriptionStatus.UNSUBSCRIBED]


# --- GET and HEAD never change anything ----------------------------------------------------


def _visit_everything(client, paths: list[str]) -> None:
    for path in paths:
        for query in ("", "?List-Unsubscribe=One-Click", "?action=unsubscribe_all&topics=news"):
            got = client.get(path + query)
            assert got.status_code == 200, (path, query, got.status_code)
            head = client.head(path + query)
            assert head.status_code == 200, (path, query, head.status_code)
            assert head.get_data() == b""


def test_get_and_head_with_valid_tokens_change_nothing(client, session, work, inbox):
    make_form(session, topics=("news", "offers"))
    response = client.post(
        "/subscribe/news",
        json={"email": "ann@example.com", "consent": True, "topics": ["news", "offers"]},
        headers=ORIGIN,
    )
    assert response.status_code == 202
    signups.drain(client.application)
    work()
    mail = inbox.only()
    ann = _subscriber(session)
    confirm_path = _path(link(mail, "confirm"))
    unsubscribe_path = _path(str(mail["List-Unsubscribe"]).strip("<>"))
    preferences_path = _links(client).preferences(ann.id)

    # Pending: a link scanner opening every link must not confirm or withdraw anything.
    before = _state(session)
    _visit_everything(client, [confirm_path, unsubscribe_path, preferences_path])
    assert _state(session) == before
    assert _statuses(session) == [SubscriptionStatus.PENDING, SubscriptionStatus.PENDING]
    assert _subscriber(session).status is SubscriberStatus.PENDING

    # Active: the same visits must not unsubscribe anyone.
    assert "You are subscribed" in _confirm(client, confirm_path).get_data(as_text=True)
    before = _state(session)
    _visit_everything(client, [confirm_path, unsubscribe_path, preferences_path])
    assert _state(session) == before
    assert _statuses(session) == [SubscriptionStatus.ACTIVE, SubscriptionStatus.ACTIVE]
    assert _subscriber(session).status is SubscriberStatus.ACTIVE
    inbox.clear()
    work()
    assert inbox.messages() == [], "visiting links sends no mail"


def test_get_and_head_on_an_expired_link_change_nothing(client, session, work, inbox):
    make_form(session)
    mail = _sign_up(client, work, inbox)
    _age_last_mail(session)
    expired = _expired_confirm_token(_message_id(mail))
    before = _state(session)
    assert client.get(f"/confirm/{expired}").status_code == 410
    assert client.head(f"/confirm/{expired}").status_code == 410
    assert client.get(f"/confirm/resend?token={expired}").status_code in {400, 405}
    assert _state(session) == before
    inbox.clear()
    work()
    assert inbox.messages() == []
