"""Every API route, fired with hostile input: never a 5xx, and every 4xx in the one error shape
`{"errors": {field: [message]}}`.

The routes come from the app's own OpenAPI document, so a route is covered the day it is added:
huge, zero and too-large ids in the path; for every JSON property the spec names, on its own and
inside an otherwise valid body, values of the wrong type, out of range, with NUL and control
characters, and 10,000 characters long; broken JSON, JSON that is not an object, wrong content
types; hostile values for every query parameter, and unknown ones. An admin key is used so that
every route is reached (roles are tested in test_roles.py). Deterministic: no random input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.api import blueprints
from tests.campaigns.conftest import make_audience, make_campaign
from tests.factories import make_form

LONG = "x" * 10_000
HOSTILE_VALUES: list[Any] = [
    None,
    [],
    {},
    "",
    LONG,
    10**30,
    -(10**30),
    -1,
    0,
    1.5,
    True,
    "\x00",
    "a\x00b",
    "a\x01\x1b\x7fb",
    "line\r\nBcc: x@evil.example",
    "é\u202e\ufeff",
    "https://a\x00b.example",
    ["https://a\x00b.example"],
    "1e309",
    "9999-12-31T23:59:59+14:00",
    "2024-13-45T25:61:00",
    [None],
    [LONG],
    ["\x00"],
    {"a": {"b": [1]}},
    {"\x00": "\x00"},
    {"k": "a\x00b"},
]
HOSTILE_QUERY = [
    "",
    "x",
    "-1",
    "0",
    "1.5",
    "1e309",
    "2147483648",
    "99999999999999999999",
    "\x00",
    "a\x01b",
    LONG,
    "é\u202e",
    "[]",
    "%",
    "9999-12-31T23:59:59+14:00",
]
IDS_IN_PATH = ["0", "2147483648", "99999999999999999999", "-1", "1.5", "x"]
EMAILS_IN_PATH = ["not-an-address", "%00", "a%00b@example.org", LONG + "@example.org", "é@é"]
RAW_BODIES: list[tuple[bytes, str]] = [
    (b"{bad json", "application/json"),
    (b"", "application/json"),
    (b"\xff\xfe\x00", "application/json"),
    (b"[" * 5000 + b"]" * 5000, "application/json"),
    (b'{"a": 1e999999}', "application/json"),
    (b"a=1&b=%00", "application/x-www-form-urlencoded"),
    (b"\xff\xfe", "text/plain"),
    (
        b"--x\r\nContent-Disposition: form-data; name=file; filename=a.csv\r\n\r\n"
        b"\x00\r\n--x--\r\n",
        "multipart/form-data; boundary=x",
    ),
]
JSON_NOT_OBJECTS: list[Any] = [None, [], "text", 1, [{}], {}]
PARAM = re.compile(r"\{([^}]+)\}")


VALID_RULES = {"field": "attribute", "key": "plan", "type": "string", "op": "eq", "value": "pro"}
VALID_MJML = (
    "<mjml><mj-body><mj-section><mj-column><mj-text>Hi {{ subscriber.first_name }} "
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text></mj-column></mj-section>'
    "</mj-body></mjml>"
)


@pytest.fixture
def world(app: Flask, session) -> dict[str, Any]:
    """One of everything a route can name, and an admin's headers."""
    topic, subscriber_ids = make_audience(session, 3)
    campaign = make_campaign(session, topic)
    form = make_form(session, slug="shop", topics=("news",))
    session.commit()
    _, key = create_api_key(session, Role.ADMIN, "fuzz")
    headers = {"Authorization": f"Bearer {key}"}
    segment = app.test_client().post(
        "/api/v1/segments",
        json={"name": "Pro", "rules": VALID_RULES},
        headers=headers,
    )
    assert segment.status_code == 201, segment.get_json()
    return {
        "headers": headers,
        "ids": {
            "template_id": campaign.template_id,
            "campaign_id": campaign.id,
            "topic_id": topic.id,
            "form_id": form.id,
            "subscriber_id": subscriber_ids[1],
            "segment_id": segment.get_json()["id"],
        },
        "email": "reader1@example.org",
    }


def valid_bodies(world: dict[str, Any], n: int) -> dict[tuple[str, str], dict[str, Any]]:
    """A body each create route accepts, so that one hostile property reaches past the check
    for missing fields (PATCH and PUT routes take any one property on its own). Names and slugs
    end in `n`: a hostile value must reach the insert, not an "already exists" check."""
    ids = world["ids"]
    return {
        ("post", "/api/v1/topics"): {"slug": f"fuzz{n}", "name": "Fuzz", "description": "d"},
        ("post", "/api/v1/templates"): {"name": f"Fuzz{n}", "mjml": VALID_MJML, "text": None},
        ("post", "/api/v1/campaigns"): {
            "name": "Fuzz",
            "subject": "Hi",
            "preheader": "",
            "from_name": "Shop",
            "from_email": "news@shop.example",
            "template_id": ids["template_id"],
            "topic_id": ids["topic_id"],
        },
        ("post", "/api/v1/forms"): {
            "slug": f"fuzz{n}",
            "name": "Fuzz sign-up",
            "topics": ["news"],
            "locale": "en",
            "allowed_origins": ["https://shop.example"],
            "consent_text": "Yes, email me the newsletter. I can unsubscribe at any time.",
        },
        ("post", "/api/v1/segments"): {"name": f"Fuzz{n}", "rules": VALID_RULES},
        ("post", "/api/v1/segments/preview"): {"rules": VALID_RULES},
        ("post", "/api/v1/campaigns/{campaign_id}/test"): {"addresses": ["qa@example.org"]},
        ("post", "/api/v1/campaigns/{campaign_id}/schedule"): {
            "send_at": "2099-01-01T00:00:00+00:00"
        },
    }


def _properties(spec: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    schemas = spec.get("components", {}).get("schemas", {})
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media.get("schema", {})
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema.get("properties", {})
    return {}


def _requests(
    spec: dict[str, Any], path: str, method: str, world: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(url, keyword arguments for the test client) for every hostile case of one route."""
    operation = spec["paths"][path][method]
    values = {
        name: world["email"] if name == "email" else str(world["ids"][name])
        for name in PARAM.findall(path)
    }
    good = _fill(path, values)
    # The path: every parameter in turn hostile, the others valid.
    for name in values:
        for bad in EMAILS_IN_PATH if name == "email" else IDS_IN_PATH:
            yield _fill(path, {**values, name: bad}), {}
    # The query string.
    query = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
    yield good, {"query_string": {"unknown": "1", "page": "99999999999999999999"}}
    for name in query:
        for value in HOSTILE_QUERY:
            yield good, {"query_string": {name: value}}
    if method not in ("post", "put", "patch", "delete"):
        return
    # The body: broken, not an object, then each property hostile.
    for data, content_type in RAW_BODIES:
        yield good, {"data": data, "content_type": content_type}
    for body in JSON_NOT_OBJECTS:
        yield good, {"json": body}
    for name in _properties(spec, operation):
        for n, value in enumerate(HOSTILE_VALUES):
            yield good, {"json": {name: value}}
            base = valid_bodies(world, n).get((method, path))
            if base:
                yield good, {"json": {**base, name: value}}


def _fill(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


def _problem(method: str, url: str, kwargs: dict[str, Any], client: FlaskClient, headers) -> str:
    """What is wrong with the answer to one hostile request ("" if nothing)."""
    what = f"{method.upper()} {url[:90]} {_describe(kwargs)}"
    try:
        response = client.open(url, method=method.upper(), headers=headers, **kwargs)
    except Exception as exc:  # the test client re-raises what the app did not handle
        return f"{what} -> raised {type(exc).__name__}: {str(exc)[:160]}"
    status = response.status_code
    if status >= 500:
        return f"{what} -> {status} {response.get_data(as_text=True)[:160]}"
    if status >= 400:
        body = response.get_json(silent=True)
        errors = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(errors, dict) or not errors:
            return f"{what} -> {status} without named errors: {response.get_data()[:120]!r}"
        for field, messages in errors.items():
            if not field or not isinstance(messages, list) or not messages:
                return f"{what} -> {status} malformed errors: {errors!r:.160}"
            if not all(isinstance(m, str) and m for m in messages):
                return f"{what} -> {status} malformed messages: {errors!r:.160}"
    return ""


def _describe(kwargs: dict[str, Any]) -> str:
    text = repr({k: v for k, v in kwargs.items()})
    return text if len(text) < 120 else text[:117] + "..."


def _routes(spec: dict[str, Any], prefix: str) -> list[tuple[str, str]]:
    """(path, method) under `prefix`; routes that erase or delete run last."""
    routes = [
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
        and (path == prefix or path.startswith(prefix + "/"))
    ]
    return sorted(routes, key=lambda r: (r[1] == "delete" or r[0].endswith("/erase"), r))


BLUEPRINTS = {blp.name: blp.url_prefix for blp in blueprints.ALL}


# Known and reported, in code another engineer is changing: marked here, not fixed here.
# (blueprint, database) -> why a route still fails there; empty: none does.
KNOWN: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("blueprint", sorted(BLUEPRINTS))
def test_hostile_input_never_breaks_a_route(
    request: pytest.FixtureRequest,
    app: Flask,
    db_kind: str,
    world: dict[str, Any],
    blueprint: str,
):
    if (blueprint, db_kind) in KNOWN:
        request.applymarker(pytest.mark.xfail(strict=False, reason=KNOWN[blueprint, db_kind]))
    client = app.test_client()
    spec = client.get("/api/v1/openapi.json").get_json()
    routes = _routes(spec, BLUEPRINTS[blueprint])
    assert routes, f"{blueprint}: no routes in the OpenAPI document"
    problems = []
    for path, method in routes:
        for url, kwargs in _requests(spec, path, method, world):
            problem = _problem(method, url, kwargs, client, world["headers"])
            if problem:
                problems.append(problem)
    assert not problems, f"{len(problems)} answers went wrong:\n" + "\n".join(problems[:40])


def test_every_route_in_the_openapi_document_belongs_to_a_fuzzed_blueprint(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    uncovered = [
        p for p in paths if not any(p == x or p.startswith(x + "/") for x in BLUEPRINTS.values())
    ]
    assert not uncovered


# The reviewer's findings, each with the answer it now gets (both were a 500 before).
FINDINGS = [
    ("get", "/api/v1/templates/99999999999999999999", None, 404, "url"),
    ("put", "/api/v1/templates/2147483648", {"name": "x"}, 404, "url"),
    (
        "post",
        "/api/v1/templates/{template_id}/preview",
        {"subscriber_id": 10**30},
        422,
        "subscriber_id",
    ),
    ("post", "/api/v1/templates", {"name": "n\x00", "mjml": VALID_MJML}, 422, "name"),
    ("post", "/api/v1/templates", {"name": "n", "mjml": VALID_MJML + "\x00"}, 422, "mjml"),
    ("put", "/api/v1/templates/{template_id}", {"text": "Hi\x00"}, 422, "text"),
    ("post", "/api/v1/topics", {"slug": "t2", "name": "T\x00"}, 422, "name"),
    (
        "post",
        "/api/v1/topics",
        {"slug": "t2", "name": "T", "description": "\x00"},
        422,
        "description",
    ),
    ("get", "/api/v1/audit-log?api_key_id=99999999999999999999", None, 422, "api_key_id"),
    ("get", "/api/v1/audit-log?action=%00", None, 422, "action"),
    ("patch", "/api/v1/forms/{form_id}", {"name": "F\x00"}, 422, "name"),
    ("patch", "/api/v1/forms/{form_id}", {"consent_text": "Yes\x00"}, 422, "consent_text"),
]


@pytest.mark.parametrize(("method", "url", "body", "status", "field"), FINDINGS)
def test_out_of_range_ids_and_nul_characters_get_a_named_answer(
    app: Flask, world: dict[str, Any], method, url, body, status, field
):
    url = _fill(url, {k: str(v) for k, v in world["ids"].items()})
    response = app.test_client().open(
        url, method=method.upper(), json=body, headers=world["headers"]
    )
    assert response.status_code == status, response.get_data(as_text=True)
    assert list(response.get_json()["errors"]) == [field], response.get_json()
