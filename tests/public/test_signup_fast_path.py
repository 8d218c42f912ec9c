"""The sign-up's fast path (`mailer.public.signup_path`): the ordinary sign-up is accepted in
front of Flask with the view's answer and the view's evidence, on the view's rate-limit budget;
everything else still reaches the view, with nothing taken from Redis on the way."""

from __future__ import annotations

import pytest
from flask import request_started
from werkzeug.test import Client

from mailer.extensions import jobs
from mailer.public.signup_path import SignupFastPath
from mailer.subscribers import intake
from tests import signups
from tests.conftest import form_tokens
from tests.factories import make_form

ORIGIN = {"Origin": "https://shop.example"}
BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "nb-NO,nb;q=0.9,en;q=0.5",
}
# Vary with every request, or with the order of two requests on one window.
PER_REQUEST = {"Set-Cookie", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"}


def _fast_path(app) -> SignupFastPath:
    wsgi = app.wsgi_app
    while not isinstance(wsgi, SignupFastPath):
        wsgi = wsgi.inner
    return wsgi


def _flask_only(app) -> Client:
    """A client of the same app with the sign-up's fast path taken off: the view answers.
    From 127.0.0.1, as Flask's test client (a plain Werkzeug client sends no address)."""
    inner = _fast_path(app).inner

    def from_loopback(environ, start_response):
        environ.setdefault("REMOTE_ADDR", "127.0.0.1")
        return inner(environ, start_response)

    return Client(from_loopback)


def _dispatched_by_flask(app) -> list[str]:
    seen: list[str] = []
    request_started.connect(lambda sender, **_: seen.append("flask"), app, weak=False)
    return seen


def _entries(app) -> list[dict[str, str]]:
    with app.app_context():
        raw = jobs.redis.xrange(intake.STREAM)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in raw]


def _hosted(client, tokens, email, **extra):
    fields = {**tokens, "email": email, "name": "Kari Nordmann", "consent": "true", "website": ""}
    return client.post("/subscribe/news", data={**fields, **extra}, headers=BROWSER)


def _json(client, email, **extra):
    return client.post(
        "/subscribe/news",
        json={"email": email, "consent": True, **extra},
        headers={**ORIGIN, "User-Agent": BROWSER["User-Agent"]},
    )


def _embed(client, email):
    return client.post(
        "/subscribe/news",
        data={"email": email, "consent": "true", "topics": "news"},
        headers={**ORIGIN, **BROWSER},
    )


def _headers(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in PER_REQUEST}


def test_the_fast_path_answers_and_records_what_the_view_does(app, client, session):
    form = make_form(session, locale=None)  # the page's language follows the browser
    tokens = form_tokens(client.get("/subscribe/news", headers=BROWSER).get_data(as_text=True))
    flask_seen = _dispatched_by_flask(app)
    # The first sign-up of a process goes to the view: it caches the form and the page.
    assert _hosted(client, tokens, "warm@example.com").status_code == 200
    assert _json(client, "warm2@example.com").status_code == 202
    assert flask_seen
    flask_seen.clear()
    view = _flask_only(app)
    view.set_cookie("session", client.get_cookie("session").value)  # the same browser

    for name, send in (
        ("hosted form", lambda c, e: _hosted(c, tokens, e)),
        ("JSON from an allowed origin", _json),
        ("embed snippet", _embed),
    ):
        fast = send(client, f"fast.{name[:4]}@example.com")
        assert flask_seen == [], f"{name}: the fast path must answer without Flask"
        slow = send(view, f"slow.{name[:4]}@example.com")
        assert flask_seen == ["flask"], name
        flask_seen.clear()
        assert fast.status == slow.status, name
        assert fast.data == slow.data, name
        assert _headers(fast) == _headers(slow), name
        # The tests' limits are all per minute: both report the new address's window.
        assert fast.headers["X-RateLimit-Remaining"] == slow.headers["X-RateLimit-Remaining"]
        assert abs(int(fast.headers["Retry-After"]) - int(slow.headers["Retry-After"])) <= 1

    entries = _entries(app)[2:]
    assert len(entries) == 6
    for fast, slow in zip(entries[0:6:2], entries[1:6:2], strict=True):
        assert fast["e"].startswith("fast.") and slow["e"].startswith("slow.")
        differ = {"e", "at"}
        assert {k: v for k, v in fast.items() if k not in differ} == {
            k: v for k, v in slow.items() if k not in differ
        }
    hosted_entry = entries[0]
    assert hosted_entry["c"] == "hosted" and hosted_entry["n"] == "Kari Nordmann"
    assert hosted_entry["l"] == "nb" and hosted_entry["fv"] == str(form.versions[0].id)
    assert hosted_entry["ua"] == BROWSER["User-Agent"]
    assert entries[2]["c"] == "json" and entries[2]["o"] == "https://shop.example"
    assert entries[4]["c"] == "embed"
    assert signups.drain(app) == 8


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (lambda c, t: _hosted(c, t, "bot@example.com", website="http://spam.example"), 200),
        (lambda c, t: _hosted(c, t, "not an address"), 400),
        (lambda c, t: _hosted(c, t, "eve@example.com", name="Eve\r\nBcc: x@evil.example"), 400),
        (lambda c, t: _hosted(c, {**t, "csrf_token": t["csrf_token"][:-2]}, "a@example.com"), 400),
        (lambda c, t: _hosted(c, {**t, "started": "forged"}, "b@example.com"), 400),
        (lambda c, t: _hosted(c, t, "c@example.com", topics="unknown"), 400),
        (lambda c, t: c.post("/subscribe/news", json={"email": "d@example.com"}), 403),
        (lambda c, t: _json(c, "e@example.com", consent=False), 400),
        (lambda c, t: _json(c, "f@example.com", form_version=999), 400),
        (lambda c, t: c.post("/subscribe/news", json=["x"], headers=ORIGIN), 400),
        (lambda c, t: c.post("/subscribe/nope", json={"email": "g@example.com"}), 404),
        (lambda c, t: c.post("/subscribe/news", data="x", headers=ORIGIN), 415),
        (
            lambda c, t: c.post(
                "/subscribe/news",
                data={"email": "h@example.com", "consent": "true"},
                headers=ORIGIN,
                content_type="multipart/form-data",
            ),
            200,
        ),
    ],
)
def test_everything_but_the_ordinary_sign_up_reaches_the_view(
    app, client, session, request_, status
):
    make_form(session)
    tokens = form_tokens(client.get("/subscribe/news").get_data(as_text=True))
    assert _hosted(client, tokens, "warm@example.com").status_code == 200
    assert _json(client, "warm2@example.com").status_code == 202
    flask_seen = _dispatched_by_flask(app)
    assert request_(client, tokens).status_code == status
    assert flask_seen == ["flask"]


def test_the_fast_path_and_the_view_draw_on_one_budget(make_settings, make_app, session):
    app = make_app(
        make_settings(MAILER_SIGNUP_RATE_LIMIT="4/minute", MAILER_ADDRESS_RATE_LIMIT="2/hour")
    )
    client = app.test_client()
    make_form(session)
    flask_seen = _dispatched_by_flask(app)
    multipart = {"content_type": "multipart/form-data", "headers": ORIGIN}

    # Per address: one by the view, one by the fast path, and the third is refused.
    assert _json(client, "victim@example.com").status_code == 202  # the view (cold cache)
    assert len(flask_seen) == 1
    assert _json(client, "Victim@example.com").status_code == 202
    assert len(flask_seen) == 1, "the second sign-up is the fast path's"
    refused = _json(client, "victim@example.com")
    assert refused.status_code == 429 and "email" in refused.get_json()["errors"]

    # Per IP: three taken so far (the refusal was answered by the view, and Flask-Limiter
    # takes the IP window's hit before it finds the address window full), and a multipart
    # one through the view makes four; the fifth is refused whichever way it comes.
    data = {"email": "third@example.com", "consent": "true"}
    assert client.post("/subscribe/news", data=data, **multipart).status_code == 200
    assert _json(client, "fourth@example.com").status_code == 429
    data = {"email": "fifth@example.com", "consent": "true"}
    assert client.post("/subscribe/news", data=data, **multipart).status_code == 429
    assert [e["e"] for e in _entries(app)] == [
        "victim@example.com",
        "victim@example.com",
        "third@example.com",
    ]


def test_with_the_default_limits_both_report_the_per_ip_minute(make_settings, make_app, session):
    app = make_app(
        make_settings(
            MAILER_SIGNUP_RATE_LIMIT="10/minute;100/hour", MAILER_ADDRESS_RATE_LIMIT="5/hour"
        )
    )
    client = app.test_client()
    make_form(session)
    assert _json(client, "warm@example.com").status_code == 202
    flask_seen = _dispatched_by_flask(app)
    fast = _json(client, "fast@example.com")
    slow = _json(_flask_only(app), "slow@example.com")
    assert flask_seen == ["flask"]
    assert _headers(fast) == _headers(slow)  # no cookie at all this time
    assert fast.headers["X-RateLimit-Limit"] == slow.headers["X-RateLimit-Limit"] == "10"
    # One window, one hit apart: the fast path's hit is counted where the view's is.
    assert fast.headers["X-RateLimit-Remaining"] == "8"
    assert slow.headers["X-RateLimit-Remaining"] == "7"
    assert abs(int(fast.headers["X-RateLimit-Reset"]) - int(slow.headers["X-RateLimit-Reset"])) <= 1
