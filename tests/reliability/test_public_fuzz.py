"""Property-based fuzzing of every public endpoint a visitor, a mail client or a mail server
reaches: confirm, resend, preferences (and its data-rights pages), unsubscribe, the open pixel,
click redirects, "view in browser", the bounce webhooks.

Hypothesis picks a route, a method, a token (real ones of every purpose, tampered, truncated,
expired, random unicode and bytes, huge), a body (none, form fields, JSON, raw bytes under any
content type), with or without our CSRF token, asking for HTML or JSON. Whatever it picks:
- never a 5xx, and the app never raises;
- GET, HEAD and OPTIONS change nothing (the only thing a GET may record is the open or click of
  a valid, unexpired tracking token of its own purpose);
- a refused request (4xx) changes nothing, and a JSON refusal names the field;
- a real token of one purpose is refused by every route of another purpose (a confirm token
  cannot unsubscribe, an unsubscribe token cannot open the preference page or export data).
The sign-up form has its own fuzz test (tests/public/test_signup_errors.py).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import itsdangerous
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import SimpleWorker
from sqlalchemy import func, select

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.campaigns.models import Delivery
from mailer.consent.models import ConsentEvent
from mailer.delivery.models import OutboundMessage, Suppression
from mailer.extensions import jobs
from mailer.subscribers.links import Links
from mailer.subscribers.models import Subscriber, Subscription
from mailer.tokens import Purpose
from mailer.tracking.links import TrackingLinks
from mailer.tracking.stream import STREAM
from tests import signups
from tests.campaigns.conftest import make_audience, make_campaign
from tests.conftest import CSRF
from tests.factories import make_form

SECRET = "test-secret-key-not-for-production"
WEBHOOK_SECRET = "fuzz-webhook-secret"
# Which purpose each token route accepts. A new route with a token must be added here, so that
# the fuzzing (and the purpose check) reaches it the day it appears.
ROUTE_PURPOSE = {
    "/confirm/<token>": Purpose.CONFIRM,
    "/preferences/<token>": Purpose.PREFERENCES,
    "/preferences/<token>/data": Purpose.PREFERENCES,
    "/preferences/<token>/erase": Purpose.PREFERENCES,
    "/unsubscribe/<token>": Purpose.UNSUBSCRIBE,
    "/t/o/<token>": Purpose.OPEN,
    "/t/c/<token>": Purpose.CLICK,
    "/m/<token>": Purpose.VIEW,
}
OTHER_ROUTES = ["/confirm/resend", "/webhooks/bounces", "/webhooks/bounces/raw"]
# Staff pages, static files and the sign-up form (fuzzed on its own) are not this test's.
NOT_HERE = ("/api/", "/admin", "/static/", "/assets/", "/login", "/logout", "/subscribe/")
TRACKING = {"/t/o/<token>", "/t/c/<token>"}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
SAFE = {"GET", "HEAD", "OPTIONS"}


@pytest.fixture
def fuzz_app(make_app, make_settings, smtp_sink):
    return make_app(
        make_settings(
            MAILER_BOUNCE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            # Guessing limits stay on in production; here they would only hide answers.
            MAILER_SIGNUP_RATE_LIMIT="100000/minute",
        )
    )


def _expired(purpose: Purpose, payload: Any) -> str:
    class TwoYearsAgo(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 2 * 365 * 24 * 3600

    serializer = itsdangerous.URLSafeTimedSerializer(SECRET, salt=purpose.value, signer=TwoYearsAgo)
    return serializer.dumps(payload)


@pytest.fixture
def tokens(fuzz_app) -> dict[str, tuple[Purpose, str, bool]]:
    """Real tokens of every purpose for real rows: name -> (purpose, token, still valid)."""
    session = fuzz_app.extensions["mailer.db"]()
    make_form(session, slug="news", topics=("news",))
    session.commit()
    client = fuzz_app.test_client()
    signed_up = client.post(
        "/subscribe/news",
        json={"email": "ann@example.org", "consent": True},
        headers={"Origin": "https://shop.example"},
    )
    assert signed_up.status_code == 202
    signups.drain(fuzz_app)
    topic, ids = make_audience(session, 2, topic_slug="offers")
    campaign = make_campaign(session, topic)
    _, key = create_api_key(session, Role.MARKETER, "fuzz")
    sent = client.post(
        f"/api/v1/campaigns/{campaign.id}/send", headers={"Authorization": f"Bearer {key}"}
    )
    assert sent.status_code == 202
    with fuzz_app.app_context():
        SimpleWorker(jobs.queues, connection=jobs.redis).work(burst=True, with_scheduler=False)
    delivery = session.scalar(select(Delivery).where(Delivery.subscriber_id == ids[0]))
    message = session.scalar(select(OutboundMessage))
    ann = session.scalar(select(Subscriber).where(Subscriber.email == "ann@example.org"))
    assert delivery is not None and message is not None and ann is not None
    signer = fuzz_app.extensions["mailer.tokens"]
    links = Links(signer, "")
    tracking = TrackingLinks(signer, "")
    path_token = lambda url: url.rstrip("/").rsplit("/", 1)[-1]  # noqa: E731
    found = {
        "confirm": (Purpose.CONFIRM, path_token(links.confirm(message.id)), True),
        "unsubscribe": (
            Purpose.UNSUBSCRIBE,
            path_token(links.unsubscribe(ids[0], ["offers"], None)),
            True,
        ),
        "preferences": (Purpose.PREFERENCES, path_token(links.preferences(ann.id)), True),
        "open": (Purpose.OPEN, path_token(tracking.open_pixel(delivery.id)), True),
        "click": (
            Purpose.CLICK,
            path_token(tracking.click(delivery.id, "https://shop.example/offer", 0)),
            True,
        ),
        "view": (Purpose.VIEW, path_token(tracking.view_in_browser(delivery.id)), True),
        "expired-confirm": (Purpose.CONFIRM, _expired(Purpose.CONFIRM, {"m": message.id}), False),
        "expired-preferences": (
            Purpose.PREFERENCES,
            _expired(Purpose.PREFERENCES, {"s": ann.id}),
            False,
        ),
    }
    # Every purpose, shaped like every payload, for the purpose-confusion property.
    shapes = {"s": ann.id, "m": message.id, "t": None, "d": delivery.id}
    for purpose in Purpose:
        found[f"minted-{purpose.name}"] = (purpose, signer.dumps(purpose, shapes), True)
    session.close()
    return found


def _fingerprint(session) -> tuple:
    """What a request could change: consent, mail, suppressions, statuses, tracking hits."""
    session.expire_all()
    counts = tuple(
        session.scalar(select(func.count()).select_from(model))
        for model in (ConsentEvent, OutboundMessage, Suppression, Subscriber)
    )
    statuses = tuple(
        session.execute(
            select(Subscription.id, Subscription.status).order_by(Subscription.id)
        ).all()
    )
    deliveries = tuple(
        session.execute(select(Delivery.id, Delivery.status).order_by(Delivery.id)).all()
    )
    session.commit()
    return counts, statuses, deliveries


def _hits(app) -> int:
    with app.app_context():
        return int(jobs.redis.xlen(STREAM))


_text = st.text(max_size=60)
_bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "action": st.sampled_from(["save", "unsubscribe_all", "x"]) | _text,
            "topics": st.lists(st.sampled_from(["news", "offers"]) | _text, max_size=3),
            "List-Unsubscribe": st.sampled_from(["One-Click", "one-click"]) | _text,
            "token": _text,
            "confirm": st.sampled_from(["yes", "no"]) | _text,
            "format": st.sampled_from(["zip", "json"]) | _text,
        },
    ).map(lambda d: ("form", d)),
    st.none(),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | _text,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
        max_leaves=12,
    ).map(lambda j: ("json", j)),
    st.tuples(
        st.binary(max_size=300),
        st.sampled_from(
            ["message/rfc822", "application/json", "text/plain", "application/octet-stream"]
        ),
    ).map(lambda raw: ("raw", raw)),
)


def _token_strategy(tokens: dict[str, tuple[Purpose, str, bool]], purpose: Purpose | None):
    """Mostly real tokens made for this route (so the answers go past the signature check),
    then real tokens of other purposes, mangled ones and noise."""
    # Hypothesis leans towards the first of a list: valid tokens first, expired ones after.
    ranked = sorted(tokens, key=lambda n: (not tokens[n][2], n))
    own = [n for n in ranked if tokens[n][0] is purpose] or ranked
    real = st.sampled_from(ranked)
    return st.one_of(
        st.sampled_from(own).map(lambda name: ("real", name)),
        real.map(lambda name: ("real", name)),
        st.tuples(real, st.integers(0, 200), st.sampled_from("AZaz09-_.~")).map(
            lambda t: ("tampered", t)
        ),
        st.tuples(real, st.integers(1, 60)).map(lambda t: ("truncated", t)),
        st.text(max_size=80).map(lambda s: ("text", s)),
        st.binary(max_size=60).map(lambda b: ("bytes", b)),
        st.just(("huge", "A" * 6000)),
    )


def _token(choice, tokens) -> tuple[str, str | None]:
    """(the token as it goes in the path, the name of the real token it is, if unchanged)."""
    kind, value = choice
    if kind == "real":
        return tokens[value][1], value
    if kind == "tampered":
        name, at, char = value
        token = tokens[name][1]
        at %= len(token)
        changed = token[:at] + char + token[at + 1 :]
        return changed, (name if changed == token else None)
    if kind == "truncated":
        name, cut = value
        return tokens[name][1][:-cut], None
    if kind == "bytes":
        return quote(value, safe=""), None
    return value, None


def _routes(app) -> list[str]:
    rules = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if not rule.rule.startswith(NOT_HERE) and rule.rule != "/"
    }
    unknown = rules - set(ROUTE_PURPOSE) - set(OTHER_ROUTES)
    assert not unknown, f"public routes this fuzz test does not know yet: {sorted(unknown)}"
    return sorted(rules)


def _named_errors(response) -> bool:
    body = response.get_json(silent=True)
    errors = body.get("errors") if isinstance(body, dict) else None
    return (
        isinstance(errors, dict)
        and bool(errors)
        and all(
            isinstance(k, str)
            and k
            and isinstance(v, list)
            and v
            and all(isinstance(m, str) for m in v)
            for k, v in errors.items()
        )
    )


def test_public_endpoints_survive_anything_and_change_nothing_they_should_not(
    fuzz_app, tokens, recorder
):
    session = fuzz_app.extensions["mailer.db"]()
    client = fuzz_app.test_client()
    routes = _routes(fuzz_app)
    allowed = {
        route: sorted(
            {
                m
                for rule in fuzz_app.url_map.iter_rules()
                if rule.rule == route
                for m in rule.methods - {"OPTIONS"}
            }
        )
        for route in routes
    }
    page = client.get(f"/confirm/{tokens['confirm'][1]}").get_data(as_text=True)
    csrf = CSRF.search(page).group(1)
    seen = {"tried": 0}

    @settings(
        max_examples=250,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        data=st.data(),
        route=st.sampled_from(routes),
        body=_bodies,
        with_csrf=st.sampled_from([True, False]),
        with_secret=st.booleans(),
        accept=st.sampled_from([None, "application/json", "text/html", "*/*"]),
    )
    def request_once(data, route, body, with_csrf, with_secret, accept):
        seen["tried"] += 1
        # Mostly a method the route serves, sometimes any.
        method = data.draw(st.sampled_from(allowed[route]) | st.sampled_from(METHODS))
        token_choice = data.draw(_token_strategy(tokens, ROUTE_PURPOSE.get(route)))
        token, real_name = _token(token_choice, tokens)
        url = route.replace("<token>", quote(token, safe="") or "x")
        headers: dict[str, str] = {}
        if accept:
            headers["Accept"] = accept
        if with_secret:
            headers["X-Webhook-Secret"] = WEBHOOK_SECRET
        kwargs: dict[str, Any] = {}
        if body is not None:
            kind, value = body
            if kind == "form":
                kwargs["data"] = {**value, **({"csrf_token": csrf} if with_csrf else {})}
            elif kind == "json":
                kwargs["json"] = value
            else:
                kwargs["data"], kwargs["content_type"] = value
        elif with_csrf:
            kwargs["data"] = {"csrf_token": csrf}
        before, hits_before = _fingerprint(session), _hits(fuzz_app)
        what = f"{method} {url[:100]} {kwargs!r:.200} {headers}"
        try:
            response = client.open(url, method=method, headers=headers, **kwargs)
        except Exception as exc:
            recorder.server_errors += 1
            raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status >= 500:
            recorder.server_errors += 1
        assert status < 500, f"{what} -> {status} {response.get_data(as_text=True)[:300]}"
        after, hits_after = _fingerprint(session), _hits(fuzz_app)

        purpose = ROUTE_PURPOSE.get(route)
        real = tokens[real_name] if real_name else None
        own = real is not None and real[0] is purpose
        if method in SAFE:
            assert after == before, f"{what} -> {status} changed the database"
            may_record = route in TRACKING and method == "GET" and own and real[2]
            if not may_record:
                assert hits_after == hits_before, f"{what} -> {status} recorded a tracking hit"
        if status >= 400:
            assert after == before, f"{what} -> {status} refused, but changed the database"
            assert hits_after == hits_before, f"{what} -> {status} refused, but recorded a hit"
            if method == "HEAD":
                pass  # no body, by definition
            elif response.mimetype == "application/json":
                assert _named_errors(response), f"{what} -> {status} {response.get_data()[:200]!r}"
            else:
                assert response.get_data(), f"{what} -> {status} with an empty body"
        if real is not None and purpose is not None and not own and method != "OPTIONS":
            # A real token of another purpose opens nothing here.
            if route == "/t/o/<token>":
                assert hits_after == hits_before, f"{what}: a {real[0].name} token was counted"
            else:
                assert status >= 400, f"{what}: a {real[0].name} token got {status}"

    request_once()
    recorder.inputs_tried += seen["tried"]
    session.close()
