"""Every bad sign-up gets a clear answer that names the field, never a 500, and writes nothing."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mailer.subscribers.models import Form, Subscriber
from tests import signups
from tests.conftest import form_tokens
from tests.factories import make_form
from tests.public.expect import counts, nothing_written

ORIGIN = {"Origin": "https://shop.example"}
JSON_ANSWER = {"Accept": "application/json"}
FIELDS = {"email", "name", "topics", "consent"}


# --- helpers -------------------------------------------------------------------------------


def _post_json(client, payload, slug="news", **headers):
    return client.post(f"/subscribe/{slug}", json=payload, headers={**ORIGIN, **headers})


def _errors(response) -> dict[str, list[str]]:
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), dict), body
    for field, messages in body["errors"].items():
        assert messages and all(isinstance(m, str) and m.strip() for m in messages), field
    return body["errors"]


def _html_errors(response) -> set[str]:
    """The fields an error page (or the form shown again) lists, as a reader sees them."""
    return set(re.findall(r'<li data-field="([^"]+)"', response.get_data(as_text=True)))


def _field_block(html: str, name: str) -> str:
    """The part of the form around the input called `name`: its label, input and message."""
    for match in re.finditer(r'<(div|fieldset) class="field[^"]*">(.*?)</\1>', html, re.S):
        if f'name="{name}"' in match.group(2):
            return match.group(2)
    raise AssertionError(f"no field {name!r} in the form")


def _form_post(client, slug="news", **fields):
    page = client.get(f"/subscribe/{slug}")
    assert page.status_code == 200
    data = {**form_tokens(page.get_data(as_text=True)), **fields}
    return client.post(f"/subscribe/{slug}", data=data)


# --- JSON: each bad field is named ---------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"consent": True}, "email", id="email-missing"),
        pytest.param({"email": None, "consent": True}, "email", id="email-null"),
        pytest.param({"email": "", "consent": True}, "email", id="email-empty"),
        pytest.param({"email": "   ", "consent": True}, "email", id="email-blank"),
        pytest.param({"email": "ann.example.com", "consent": True}, "email", id="email-no-at"),
        pytest.param({"email": "ann@", "consent": True}, "email", id="email-no-domain"),
        pytest.param({"email": "@example.com", "consent": True}, "email", id="email-no-local"),
        pytest.param({"email": "ann@@example.com", "consent": True}, "email", id="email-two-at"),
        pytest.param({"email": "ann @example.com", "consent": True}, "email", id="email-space"),
        pytest.param(
            {"email": "ann@example.com\r\nBcc: x@evil.example", "consent": True},
            "email",
            id="email-crlf",
        ),
        pytest.param(
            {"email": "a" * 250 + "@example.com", "consent": True}, "email", id="email-too-long"
        ),
        pytest.param(
            {"email": "a" * 64 + "@" + "b" * 300 + ".com", "consent": True},
            "email",
            id="email-domain-too-long",
        ),
        pytest.param({"email": ["ann@example.com"], "consent": True}, "email", id="email-list"),
        pytest.param({"email": 42, "consent": True}, "email", id="email-number"),
        pytest.param({"email": {"a": "b"}, "consent": True}, "email", id="email-object"),
        pytest.param({"email": True, "consent": True}, "email", id="email-bool"),
        pytest.param(
            # A lone surrogate is valid JSON ("\ud800") but is not text UTF-8 can carry.
            {"email": "ann\ud800@example.com", "consent": True},
            "email",
            id="email-lone-surrogate",
        ),
        pytest.param({"email": "ann@example.com"}, "consent", id="consent-missing"),
        pytest.param({"email": "ann@example.com", "consent": False}, "consent", id="consent-false"),
        pytest.param({"email": "ann@example.com", "consent": "no"}, "consent", id="consent-no"),
        pytest.param({"email": "ann@example.com", "consent": "off"}, "consent", id="consent-off"),
        pytest.param({"email": "ann@example.com", "consent": 0}, "consent", id="consent-zero"),
        pytest.param({"email": "ann@example.com", "consent": None}, "consent", id="consent-null"),
        pytest.param(
            {"email": "ann@example.com", "consent": "maybe"}, "consent", id="consent-maybe"
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": ["yes"]}, "consent", id="consent-list"
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "topics": ["nope"]},
            "topics",
            id="topic-unknown",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "topics": ["news", "nope"]},
            "topics",
            id="topic-one-unknown",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "topics": "news"},
            "topics",
            id="topics-not-a-list",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "topics": [""]},
            "topics",
            id="topic-empty",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "topics": [3]},
            "topics",
            id="topic-number",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "topics": ["news\ud800"]},
            "topics",
            id="topic-lone-surrogate",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "name": "Ann\r\nBcc: x@evil.example"},
            "name",
            id="name-crlf",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "name": "Ann\nSmith"},
            "name",
            id="name-lf",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "name": "Ann\rSmith"},
            "name",
            id="name-cr",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "name": "Ann\x00"},
            "name",
            id="name-nul",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "name": "Ann\u2028Smith"},
            "name",
            id="name-line-separator",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "name": "A" * 201},
            "name",
            id="name-too-long",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": True, "name": ["Ann"]},
            "name",
            id="name-list",
        ),
        pytest.param(
            # Valid JSON, but no database can store it.
            {"email": "ann@example.com", "consent": True, "name": "Ann \ud800"},
            "name",
            id="name-lone-surrogate",
        ),
    ],
)
def test_json_bad_field_is_named_and_nothing_is_written(
    client, session, work, inbox, payload, field
):
    make_form(session, topics=("news", "offers"))
    response = _post_json(client, payload)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    errors = _errors(response)
    assert field in errors, errors
    nothing_written(client.application, session, work, inbox)


def test_json_several_bad_fields_are_all_named(client, session, work, inbox):
    make_form(session)
    response = _post_json(client, {"email": "nope", "consent": "no", "name": "a\nb"})
    assert response.status_code == 400
    assert {"email", "consent", "name"} <= set(_errors(response))
    nothing_written(client.application, session, work, inbox)


def test_idn_domain_is_stored_normalised_and_mailed_in_punycode(client, session, work, inbox):
    make_form(session)
    response = _post_json(client, {"email": "ann@Exämple.com", "consent": True})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json() == {"status": "pending"}

    signups.drain(client.application)
    session.expire_all()
    emails = session.scalars(select(Subscriber.email)).all()
    assert emails == ["ann@exämple.com"]

    work()
    mail = inbox.only()
    assert mail["Subject"] == "Please confirm your subscription"
    assert str(mail["X-Catcher-Rcpt-To"]).strip() == "ann@xn--exmple-cua.com"


def test_idn_address_in_the_to_header_is_readable(client, session, work, inbox):
    """The envelope went without SMTPUTF8, so the headers must be plain ASCII too (RFC 6532):
    a mail reader then shows the address, in either spelling, not mojibake."""
    make_form(session)
    assert _post_json(client, {"email": "ann@Exämple.com", "consent": True}).status_code == 202
    signups.drain(client.application)
    work()
    mail = inbox.only()
    (to,) = mail["To"].addresses
    assert to.addr_spec.lower() in {"ann@exämple.com", "ann@xn--exmple-cua.com"}


# --- HTML form: shown again, message next to the field, typed values kept -------------------


@pytest.mark.parametrize(
    ("fields", "field", "kept"),
    [
        pytest.param({"consent": "true"}, "email", "", id="email-missing"),
        pytest.param({"email": "ann.example.com", "consent": "true"}, "email", "ann.example.com"),
        pytest.param({"email": "ann@", "consent": "true"}, "email", "ann@"),
        pytest.param(
            {"email": "a" * 250 + "@example.com", "consent": "true"},
            "email",
            "a" * 250 + "@example.com",
            id="email-too-long",
        ),
        pytest.param({"email": "ann@example.com"}, "consent", "ann@example.com", id="no-consent"),
        pytest.param(
            {"email": "ann@example.com", "consent": "no"},
            "consent",
            "ann@example.com",
            id="consent-no",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": "true", "topics": ["nope"]},
            "topics",
            "ann@example.com",
            id="topic-unknown",
        ),
        pytest.param(
            {"email": "ann@example.com", "consent": "true", "name": "Ann\r\nBcc: x@evil.example"},
            "name",
            "ann@example.com",
            id="name-crlf",
        ),
    ],
)
def test_html_form_is_shown_again_with_the_message_next_to_the_field(
    client, session, work, inbox, fields, field, kept
):
    make_form(session, topics=("news", "offers"))
    response = _form_post(client, **fields)
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert 'role="alert"' in html and field in _html_errors(response)
    block = _field_block(html, field)
    assert 'class="field-error"' in block, f"no message next to {field}: {block}"
    message = re.search(r'class="field-error"[^>]*>([^<]+)<', block).group(1)
    assert message.strip()
    # The form is there again, ready to send, with what the visitor typed.
    assert 'name="csrf_token"' in html and 'name="started"' in html
    email_input = re.search(r'<input id="email"[^>]*>', html, re.S).group(0)
    assert f'value="{kept}"' in email_input
    nothing_written(client.application, session, work, inbox)


# --- the request itself is wrong -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("email=ann@example.com&consent=true", "text/plain"),
        ("<signup><email>ann@example.com</email></signup>", "application/xml"),
        ("ann@example.com", "application/octet-stream"),
        ("", None),
    ],
)
def test_wrong_content_type_is_415(client, session, work, inbox, body, content_type):
    make_form(session)
    headers = {**ORIGIN, **JSON_ANSWER}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/subscribe/news", data=body, headers=headers)
    assert response.status_code == 415
    assert "content_type" in _errors(response)
    # A person posting from a page gets a page that says the same.
    page = client.post("/subscribe/news", data=body, headers={**ORIGIN, "Content-Type": "x/y"})
    assert page.status_code == 415 and "content_type" in _html_errors(page)
    nothing_written(client.application, session, work, inbox)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"email": "ann@example.com", "consent": tru', id="truncated"),
        pytest.param("{'email': 'ann@example.com'}", id="single-quotes"),
        pytest.param("", id="empty"),
        pytest.param("\xff\xfe{}", id="not-utf8"),
        pytest.param('["ann@example.com", true]', id="array"),
        pytest.param('"ann@example.com"', id="string"),
        pytest.param("null", id="null"),
        pytest.param("42", id="number"),
        pytest.param("[" * 30000 + "]" * 30000, id="deeply-nested-array"),
        pytest.param('{"a":' * 10000 + "1" + "}" * 10000, id="deeply-nested-object"),
    ],
)
def test_malformed_json_is_a_client_error(client, session, work, inbox, body):
    make_form(session)
    data = body.encode("latin-1") if body.startswith("\xff") else body.encode()
    assert len(data) < 64 * 1024
    response = client.post(
        "/subscribe/news", data=data, headers={**ORIGIN, "Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.status_code
    errors = _errors(response)
    assert {"content_type", "body", "request"} & set(errors), errors
    nothing_written(client.application, session, work, inbox)


@pytest.mark.parametrize("kind", ["json", "form", "multipart"])
def test_oversized_body_is_413(client, session, work, inbox, kind):
    make_form(session)
    huge = "x" * (64 * 1024 + 1)
    headers = {**ORIGIN, **JSON_ANSWER}
    if kind == "json":
        response = client.post(
            "/subscribe/news",
            json={"email": "ann@example.com", "consent": True, "name": huge},
            headers=headers,
        )
    else:
        response = client.post(
            "/subscribe/news",
            data={"email": "ann@example.com", "consent": "true", "name": huge},
            content_type="multipart/form-data" if kind == "multipart" else None,
            headers=headers,
        )
    assert response.status_code == 413
    assert "body" in _errors(response)
    nothing_written(client.application, session, work, inbox)


def test_body_limit_follows_the_setting(make_settings, make_app, session, work, inbox):
    app = make_app(make_settings(MAILER_MAX_BODY_BYTES="1024"))
    client = app.test_client()
    make_form(session)
    response = client.post(
        "/subscribe/news",
        json={"email": "ann@example.com", "consent": True, "name": "x" * 2000},
        headers={**ORIGIN},
    )
    assert response.status_code == 413 and "body" in _errors(response)
    nothing_written(client.application, session, work, inbox)


NOT_FOUND_FIELDS = {"form", "url"}


@pytest.mark.parametrize(
    "slug", ["no-such-form", "News", "x" * 200, "bad%00slug", "%C3%A9t%C3%A9", "news%20"]
)
def test_unknown_form_is_404(client, session, work, inbox, slug):
    make_form(session)
    as_json = _post_json(client, {"email": "ann@example.com", "consent": True}, slug=slug)
    assert as_json.status_code == 404
    assert NOT_FOUND_FIELDS & set(_errors(as_json))
    page = client.get(f"/subscribe/{slug}")
    assert page.status_code == 404 and NOT_FOUND_FIELDS & _html_errors(page)
    posted = client.post(
        f"/subscribe/{slug}", data={"email": "ann@example.com", "consent": "true"}, headers=ORIGIN
    )
    assert posted.status_code == 404 and NOT_FOUND_FIELDS & _html_errors(posted)
    assert client.get(f"/subscribe/{slug}/embed").status_code == 404
    nothing_written(client.application, session, work, inbox)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405(client, session, work, inbox, method):
    make_form(session)
    response = client.open(
        "/subscribe/news",
        method=method,
        json={"email": "ann@example.com", "consent": True},
        headers=ORIGIN,
    )
    assert response.status_code == 405
    assert "method" in _errors(response)
    nothing_written(client.application, session, work, inbox)


def test_405_says_which_methods_are_allowed(client, session):
    """RFC 9110, 15.5.6: a 405 answer MUST carry an Allow header listing the methods."""
    make_form(session)
    response = client.put("/subscribe/news", json={}, headers=ORIGIN)
    assert response.status_code == 405
    allow = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
    assert {"GET", "POST"} <= allow, f"Allow header: {response.headers.get('Allow')!r}"


# --- whatever comes in, the answer is a considered one -------------------------------------

_huge = st.builds(
    lambda n, c: c * n,
    st.sampled_from([300, 1000, 70_000]),
    st.sampled_from(["a", "é", "😀", "\u202e", "@", "\n"]),
)
_emailish = st.one_of(
    st.emails(),
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        st.text(max_size=70),
        st.text(max_size=70),
    ),
)
_form_value = st.one_of(st.text(max_size=300), _emailish, _huge)
_json_scalar = st.one_of(
    _form_value,
    # Text JSON can carry but UTF-8 cannot: lone surrogates.
    st.text(st.characters(categories=["Cs", "Ll", "Zs", "Cc"]), max_size=20),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
)
_json_value = st.one_of(
    _json_scalar,
    st.lists(_json_scalar, max_size=60),
    st.dictionaries(st.text(max_size=8), _json_scalar, max_size=3),
)
_TRUTHY = st.sampled_from([True, "true", "on", "yes", "1"])
_json_topics = st.one_of(_json_value, st.lists(st.sampled_from(["news", "offers", "x"])))
_form_topics = st.lists(st.one_of(st.sampled_from(["news", "offers"]), _form_value), max_size=5)
# Anything at all in any field, each field there or not...
_json_payload = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "email": st.one_of(st.emails(), _json_value),
            "name": _json_value,
            "topics": _json_topics,
            "consent": st.one_of(_json_value, _TRUTHY),
        },
    ),
    # ...or a real address with consent, so that the random rest reaches the database too.
    st.fixed_dictionaries(
        {"email": st.emails(), "consent": _TRUTHY},
        optional={"name": _json_value, "topics": _json_topics},
    ),
)
_form_payload = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "email": st.one_of(st.emails(), _form_value),
            "name": _form_value,
            "topics": _form_topics,
            "consent": st.one_of(_form_value, _TRUTHY),
        },
    ),
    st.fixed_dictionaries(
        {"email": st.emails(), "consent": _TRUTHY},
        optional={"name": _form_value, "topics": _form_topics},
    ),
)
_extra = st.dictionaries(
    st.text(max_size=10).filter(lambda k: k not in {"website", *FIELDS}),
    st.text(max_size=20),
    max_size=2,
)


@pytest.fixture
def roomy_client(make_settings, make_app):
    """Limits out of the way: this test is about answers, not about rate limiting."""
    app = make_app(
        make_settings(
            MAILER_SIGNUP_RATE_LIMIT="100000/minute", MAILER_ADDRESS_RATE_LIMIT="100000/minute"
        )
    )
    return app.test_client()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    as_json=st.booleans(),
    json_payload=_json_payload,
    form_payload=_form_payload,
    extra=_extra,
)
def test_any_input_gets_a_considered_answer(
    roomy_client, session, as_json, json_payload, form_payload, extra
):
    # The fixtures live for the whole test, so the form is made by the first example only.
    if session.scalar(select(Form.id).where(Form.slug == "news")) is None:
        make_form(session, topics=("news", "offers"))
        session.commit()

    before = counts(session)
    headers = {**ORIGIN, **JSON_ANSWER}
    if as_json:
        payload = {**extra, **json_payload}
        response = roomy_client.post("/subscribe/news", json=payload, headers=headers)
    else:
        payload = {**extra, **form_payload}
        response = roomy_client.post("/subscribe/news", data=payload, headers=headers)

    event(f"{'json' if as_json else 'form'} {response.status_code}")
    assert response.status_code in {202, 400, 413, 415, 403}, (
        response.status_code,
        response.get_data(as_text=True)[:500],
    )
    assert response.mimetype == "application/json"
    if response.status_code == 202:
        assert response.get_json() == {"status": "pending"}
        # Whatever was accepted, the workers can write: nothing is dropped on the way.
        assert signups.drain(roomy_client.application) == 1
        return
    errors = _errors(response)
    if response.status_code == 400:
        named = set(errors) & (set(payload) | FIELDS)
        assert named, (errors, sorted(payload))
    assert signups.waiting(roomy_client.application) == 0, "a refused sign-up is not accepted"
    assert counts(session) == before, "a refused sign-up must not write anything"


def test_json_nested_thousands_deep_is_a_clear_400(client, session):
    make_form(session)
    body = "[" * 5000 + "]" * 5000
    for path in ("/subscribe/news", "/api/v1/topics"):
        response = client.post(path, data=body, content_type="application/json")
        assert response.status_code in (400, 401), (path, response.status_code)
        assert "errors" in response.get_json()
