"""Bots, forged posts, floods and list bombing: refused or absorbed, and nothing sent twice."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.subscribers.models import Subscriber
from mailer.tokens import Purpose
from tests import signups
from tests.conftest import form_tokens
from tests.factories import make_form
from tests.inbox import text_of
from tests.public.expect import nothing_written

ORIGIN = {"Origin": "https://shop.example"}
JSON_ANSWER = {"Accept": "application/json"}


def _requested(session) -> list[ConsentEvent]:
    session.expire_all()
    return [
        e
        for e in session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))
        if e.type is ConsentEventType.REQUESTED
    ]


def _errors(response) -> dict[str, list[str]]:
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), dict), body
    return body["errors"]


def _html_errors(response) -> set[str]:
    return set(re.findall(r'<li data-field="([^"]+)"', response.get_data(as_text=True)))


def _page_tokens(client, slug="news") -> dict[str, str]:
    page = client.get(f"/subscribe/{slug}")
    assert page.status_code == 200
    return form_tokens(page.get_data(as_text=True))


def _post_json(client, email, headers=None, environ_base=None, **fields):
    return client.post(
        "/subscribe/news",
        json={"email": email, "consent": True, **fields},
        headers={**ORIGIN, **(headers or {})},
        environ_base=environ_base or {},
    )


# --- honeypot ------------------------------------------------------------------------------


def test_honeypot_answers_like_success_but_does_nothing(client, session, work, inbox):
    make_form(session)
    bot = client.post(
        "/subscribe/news",
        data={
            **_page_tokens(client),
            "email": "victim@example.com",
            "consent": "true",
            "website": "http://spam.example",
        },
    )
    bot_json = client.post(
        "/subscribe/news",
        json={"email": "victim@example.com", "consent": True, "website": "x"},
        headers=ORIGIN,
    )
    nothing_written(client.application, session, work, inbox)

    human = client.post(
        "/subscribe/news",
        data={**_page_tokens(client), "email": "ann@example.com", "consent": "true"},
    )
    human_json = client.post(
        "/subscribe/news", json={"email": "bob@example.com", "consent": True}, headers=ORIGIN
    )
    assert bot.status_code == human.status_code == 200
    assert bot.get_data(as_text=True) == human.get_data(as_text=True)
    assert "Check your inbox" in bot.get_data(as_text=True)
    assert bot_json.status_code == human_json.status_code == 202
    assert bot_json.get_json() == human_json.get_json() == {"status": "pending"}
    signups.drain(client.application)
    work()
    assert {str(m["X-Catcher-Rcpt-To"]).strip() for m in inbox.messages()} == {
        "ann@example.com",
        "bob@example.com",
    }


def test_honeypot_even_with_bad_fields_gives_nothing_away(client, session, work, inbox):
    make_form(session)
    bot = client.post(
        "/subscribe/news",
        json={"email": "not an address", "website": "x"},
        headers=ORIGIN,
    )
    assert bot.status_code == 202 and bot.get_json() == {"status": "pending"}
    nothing_written(client.application, session, work, inbox)


# --- minimum fill time ---------------------------------------------------------------------


def test_form_sent_too_fast_is_refused(make_settings, make_app, session, work, inbox):
    app = make_app(make_settings(MAILER_MIN_FILL_SECONDS="2"))
    client = app.test_client()
    make_form(session)
    tokens = _page_tokens(client)
    response = client.post(
        "/subscribe/news", data={**tokens, "email": "ann@example.com", "consent": "true"}
    )
    assert response.status_code == 400
    assert "started" in _html_errors(response)
    html = response.get_data(as_text=True)
    assert "That was quick!" in html
    assert 'value="ann@example.com"' in html, "the typed address is kept"
    as_json = client.post(
        "/subscribe/news",
        data={**tokens, "email": "ann@example.com", "consent": "true"},
        headers=JSON_ANSWER,
    )
    assert as_json.status_code == 400 and "started" in _errors(as_json)
    nothing_written(client.application, session, work, inbox)


@pytest.mark.parametrize("started", ["", "garbage", "1700000000"])
def test_missing_or_forged_start_time_is_refused(
    make_settings, make_app, session, work, inbox, started
):
    app = make_app(make_settings(MAILER_MIN_FILL_SECONDS="2"))
    client = app.test_client()
    make_form(session)
    tokens = {**_page_tokens(client), "started": started}
    response = client.post(
        "/subscribe/news",
        data={**tokens, "email": "ann@example.com", "consent": "true"},
        headers=JSON_ANSWER,
    )
    assert response.status_code == 400 and "started" in _errors(response)
    nothing_written(client.application, session, work, inbox)


def test_form_filled_at_human_speed_is_accepted(make_settings, make_app, session, work, inbox):
    app = make_app(make_settings(MAILER_MIN_FILL_SECONDS="2"))
    client = app.test_client()
    form = make_form(session)
    tokens = _page_tokens(client)
    # The page was opened ten seconds ago (the same signed value the page itself carries).
    with app.app_context():
        tokens["started"] = app.extensions["mailer.tokens"].dumps(
            Purpose.FORM_STARTED, {"t": int(time.time()) - 10, "v": form.current_version.id}
        )
    response = client.post(
        "/subscribe/news", data={**tokens, "email": "ann@example.com", "consent": "true"}
    )
    assert response.status_code == 200 and "Check your inbox" in response.get_data(as_text=True)
    signups.drain(app)
    work()
    assert inbox.only()["Subject"] == "Please confirm your subscription"


# --- cross-site request forgery and origins ------------------------------------------------


def test_form_post_without_token_or_origin_is_403(client, session, work, inbox):
    make_form(session)
    response = client.post("/subscribe/news", data={"email": "ann@example.com", "consent": "true"})
    assert response.status_code == 403
    assert "origin" in _html_errors(response)
    as_json = client.post(
        "/subscribe/news",
        data={"email": "ann@example.com", "consent": "true"},
        headers=JSON_ANSWER,
    )
    assert as_json.status_code == 403 and "origin" in _errors(as_json)
    nothing_written(client.application, session, work, inbox)


@pytest.mark.parametrize("token", ["wrong", "IjEyMyI.ZZZZZZ.abcdefghijklmnop", "x" * 5000])
def test_form_post_with_wrong_csrf_token_is_400(client, session, work, inbox, token):
    make_form(session)
    tokens = {**_page_tokens(client), "csrf_token": token}
    response = client.post(
        "/subscribe/news", data={**tokens, "email": "ann@example.com", "consent": "true"}
    )
    assert response.status_code == 400
    assert "csrf_token" in _html_errors(response)
    # An allowed Origin does not rescue a bad token: the token, once sent, must be right.
    as_json = client.post(
        "/subscribe/news",
        data={**tokens, "email": "ann@example.com", "consent": "true"},
        headers={**ORIGIN, **JSON_ANSWER},
    )
    assert as_json.status_code == 400 and "csrf_token" in _errors(as_json)
    nothing_written(client.application, session, work, inbox)


def test_csrf_token_from_another_browser_is_refused(app, session, work, inbox):
    make_form(session)
    alice, mallory = app.test_client(), app.test_client()
    stolen = _page_tokens(mallory)
    _page_tokens(alice)  # Alice has a session of her own
    response = alice.post(
        "/subscribe/news", data={**stolen, "email": "ann@example.com", "consent": "true"}
    )
    assert response.status_code == 400 and "csrf_token" in _html_errors(response)
    nothing_written(app, session, work, inbox)


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://shop.example",  # same host, other scheme
        "https://shop.example.evil.example",
        "https://shop.example:8443",
        "null",
    ],
)
def test_json_from_an_origin_not_on_the_list_is_403(client, session, work, inbox, origin):
    make_form(session)
    response = client.post(
        "/subscribe/news",
        json={"email": "ann@example.com", "consent": True},
        headers={"Origin": origin},
    )
    assert response.status_code == 403
    assert "origin" in _errors(response)
    no_origin = client.post("/subscribe/news", json={"email": "ann@example.com", "consent": True})
    assert no_origin.status_code == 403 and "origin" in _errors(no_origin)
    nothing_written(client.application, session, work, inbox)


def test_embed_snippet_post_from_an_allowed_origin_is_accepted(client, session, work, inbox):
    make_form(session)
    snippet = client.get("/subscribe/news/embed")
    assert snippet.status_code == 200
    assert 'action="http://localhost/subscribe/news"' in snippet.get_data(as_text=True)
    # What a browser sends from the shop's page: form-encoded, the shop's Origin, no token.
    response = client.post(
        "/subscribe/news",
        data={"email": "ann@example.com", "consent": "true", "website": ""},
        headers={"Origin": "https://SHOP.example"},
    )
    assert response.status_code == 200
    assert "Check your inbox" in response.get_data(as_text=True)
    signups.drain(client.application)
    assert len(_requested(session)) == 1
    work()
    assert inbox.only()["Subject"] == "Please confirm your subscription"


# --- rate limits (real Redis) --------------------------------------------------------------


def test_too_many_signups_from_one_ip_is_429(make_settings, make_app, session, work, inbox):
    app = make_app(make_settings(MAILER_SIGNUP_RATE_LIMIT="3/minute"))
    client = app.test_client()
    make_form(session)
    answers = [
        _post_json(client, f"person{i}@example.com", headers=JSON_ANSWER).status_code
        for i in range(4)
    ]
    assert answers == [202, 202, 202, 429]
    refused = _post_json(client, "person9@example.com", headers=JSON_ANSWER)
    assert refused.status_code == 429
    assert "request" in _errors(refused)
    assert "Retry-After" in refused.headers
    page = client.post(
        "/subscribe/news", data={"email": "x@example.com", "consent": "true"}, headers=ORIGIN
    )
    assert page.status_code == 429 and "request" in _html_errors(page)
    # A forged X-Forwarded-For does not make a new visitor (no proxy is configured).
    spoofed = _post_json(
        client, "person8@example.com", headers={**JSON_ANSWER, "X-Forwarded-For": "10.9.9.9"}
    )
    assert spoofed.status_code == 429
    # Another visitor is not held back by this one.
    other = _post_json(
        client, "other@example.com", headers=JSON_ANSWER, environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert other.status_code == 202
    signups.drain(app)
    assert len(_requested(session)) == 4
    work()
    assert len(inbox.messages()) == 4


def test_too_many_signups_of_one_address_is_429(make_settings, make_app, session, work, inbox):
    app = make_app(make_settings(MAILER_ADDRESS_RATE_LIMIT="2/minute"))
    client = app.test_client()
    make_form(session)
    spellings = ["victim@example.com", "Victim@Example.com", " VICTIM@example.com "]
    answers = []
    for n, email in enumerate(spellings, start=1):
        response = _post_json(
            client,
            email,
            headers=JSON_ANSWER,
            environ_base={"REMOTE_ADDR": f"10.0.0.{n}"},
        )
        answers.append(response)
    assert [r.status_code for r in answers] == [202, 202, 429]
    assert "email" in _errors(answers[-1])
    signups.drain(app)
    assert len(_requested(session)) == 2
    # Other addresses from the same place go through.
    fine = _post_json(
        client, "someone@example.com", headers=JSON_ANSWER, environ_base={"REMOTE_ADDR": "10.0.0.3"}
    )
    assert fine.status_code == 202
    signups.drain(app)
    work()
    assert len(inbox.messages("victim@example.com")) == 1


def test_list_bombing_one_address_gets_one_email(client, session, work, inbox):
    make_form(session)
    for n in range(5):
        response = _post_json(
            client, "victim@example.com", environ_base={"REMOTE_ADDR": f"10.0.1.{n}"}
        )
        assert response.status_code == 202
        assert response.get_json() == {"status": "pending"}
    signups.drain(client.application)
    work()
    (mail,) = inbox.messages()
    assert mail["Subject"] == "Please confirm your subscription"
    assert str(mail["X-Catcher-Rcpt-To"]).strip() == "victim@example.com"
    requested = _requested(session)
    assert len(requested) == 5, "every request is evidence, even when no mail is sent"
    assert {e.ip for e in requested} == {f"10.0.1.{n}" for n in range(5)}
    # The HTML form (a different way in) does not get past the window either.
    client.post(
        "/subscribe/news",
        data={**_page_tokens(client), "email": "victim@example.com", "consent": "true"},
    )
    signups.drain(client.application)
    work()
    assert len(inbox.messages()) == 1
    assert len(_requested(session)) == 6


# --- header injection through the name ----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Eve\r\nBcc: x@evil.example",
        "Eve\nBcc: x@evil.example",
        "Eve\rBcc: x@evil.example",
        "Eve\r\n\r\nbody",
        "Eve\x85Bcc: x@evil.example",
        "Eve\u2028Bcc: x@evil.example",
        "Eve\x00",
        "Eve\tBcc",
        # RFC 2047 encoded words: plain text to a validator, CR/LF once a mail library decodes
        # them (Python's email package does so while refolding the To header).
        "=?utf-8?q?Eve=0D=0ABcc:_x@evil.example?=",
        "=?utf-8?b?RXZlDQoNCkNsaWNrIGh0dHA6Ly9ldmlsLmV4YW1wbGU=?=",
    ],
)
def test_name_with_line_breaks_is_refused(client, session, work, inbox, name):
    make_form(session)
    response = _post_json(client, "eve@example.com", name=name)
    assert response.status_code == 400
    assert "name" in _errors(response)
    page = client.post(
        "/subscribe/news",
        data={**_page_tokens(client), "email": "eve@example.com", "consent": "true", "name": name},
    )
    assert page.status_code == 400 and "name" in _html_errors(page)
    nothing_written(client.application, session, work, inbox)


# Every header a confirmation email has; the sink adds the two X-Catcher ones.
HEADERS = {
    "X-Catcher-Mail-From",
    "X-Catcher-Rcpt-To",
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "X-Mailer-Message",
    "Content-Type",
}


@pytest.mark.parametrize(
    "name",
    [
        "Smith, John",
        "O'Brien; Bcc: x@evil.example",
        "Eve <x@evil.example>, y@evil.example",
        'Åse "the boss" Ødegård',
        "Zoë (CEO) \\ Ltd.",
        "李小龍 🐉",
    ],
)
def test_unusual_name_is_mailed_safely(client, session, work, inbox, name):
    make_form(session)
    response = _post_json(client, "ann@example.com", name=name)
    assert response.status_code == 202
    signups.drain(client.application)
    work()
    mail = inbox.only()
    assert str(mail["X-Catcher-Rcpt-To"]).strip() == "ann@example.com"
    assert set(mail.keys()) == HEADERS, f"headers were injected: {mail.items()}"
    assert mail["Subject"] == "Please confirm your subscription"
    (to,) = mail["To"].addresses
    assert to.addr_spec == "ann@example.com"
    assert to.display_name == name, f"To: {mail['To']!r}"
    assert name in text_of(mail)


# --- unsubscribing is never throttled away ---------------------------------------------------


def test_many_one_click_unsubscribes_from_one_ip_all_count(make_settings, make_app, session):
    """Gmail and Yahoo send one-click POSTs from few IPs: every valid one must be honoured,
    while guessing at tokens is still limited."""
    from mailer.subscribers.links import Links

    app = make_app(make_settings(MAILER_SIGNUP_RATE_LIMIT="3/minute"))
    client = app.test_client()
    make_form(session)
    links = Links(app.extensions["mailer.tokens"], "")
    ids = []
    for i in range(6):
        person = Subscriber(email=f"p{i}@example.com", locale="en", attributes={})
        session.add(person)
        session.flush()
        ids.append(person.id)
    session.commit()
    codes = [
        client.post(
            links.unsubscribe(i, None, None),
            data={"List-Unsubscribe": "One-Click"},
            environ_base={"REMOTE_ADDR": "209.85.220.41"},
        ).status_code
        for i in ids
    ]
    assert codes == [200] * 6
    bad = [
        client.post(
            "/unsubscribe/forged.token.here",
            data={"List-Unsubscribe": "One-Click"},
            environ_base={"REMOTE_ADDR": "209.85.220.41"},
        ).status_code
        for _ in range(4)
    ]
    assert bad == [400, 400, 400, 429]


def test_an_old_unsubscribe_link_still_unsubscribes(client, session, work, inbox):
    import itsdangerous

    from mailer.consent.models import ConsentEventType
    from mailer.tokens import Purpose

    class TwoYearsAgo(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 2 * 365 * 24 * 3600

    make_form(session)
    _post_json(client, "ann@example.com")
    signups.drain(client.application)
    ann = session.scalar(select(Subscriber))
    serializer = itsdangerous.URLSafeTimedSerializer(
        "test-secret-key-not-for-production", salt=Purpose.UNSUBSCRIBE.value, signer=TwoYearsAgo
    )
    token = serializer.dumps({"s": ann.id, "t": None, "m": None})
    response = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert _requested(session)  # the request is there, and now its withdrawal:
    session.expire_all()
    assert session.scalars(select(ConsentEvent)).all()[-1].type is ConsentEventType.WITHDRAWN


def test_look_alike_spellings_of_one_address_share_its_rate_limit(make_settings, make_app, session):
    app = make_app(make_settings(MAILER_ADDRESS_RATE_LIMIT="2/minute"))
    client = app.test_client()
    make_form(session)
    # Upper case, and full-width letters that normalise to the same address.
    spellings = [
        "vic@example.com",
        "VIC@example.com",
        "vic@\uff45xample.com",
        "vic@ex\uff41mple.com",
    ]
    codes = [
        client.post(
            "/subscribe/news",
            json={"email": e, "consent": True},
            headers=ORIGIN,
            environ_base={"REMOTE_ADDR": f"198.51.100.{i}"},
        ).status_code
        for i, e in enumerate(spellings)
    ]
    assert codes == [202, 202, 429, 429]
