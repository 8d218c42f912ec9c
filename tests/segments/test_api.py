"""/api/v1/segments: who may do what, saving, counting, previewing, and bad input."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.accounts.models import Role
from mailer.segments import service
from tests.segments.conftest import NOW

URL = "/api/v1/segments"
PRO = {"field": "attribute", "key": "plan", "type": "string", "op": "eq", "value": "pro"}


@pytest.fixture
def marketer(make_key):
    return make_key(Role.MARKETER)


@pytest.fixture
def people(world):
    ann = world.subscriber(
        "ann@example.org", name="Ann", status="active", attributes={"plan": "pro"}, created_at=NOW
    )
    world.subscriber("bob@example.org", name="Bob", attributes={"plan": "free"}, created_at=NOW)
    return ann


# (method, path, roles besides admin that may call it); segment 1 exists in these tests.
ROUTES = [
    ("GET", URL, {Role.MARKETER, Role.COMPLIANCE}),
    ("POST", URL, {Role.MARKETER}),
    ("GET", f"{URL}/1", {Role.MARKETER, Role.COMPLIANCE}),
    ("PATCH", f"{URL}/1", {Role.MARKETER}),
    ("GET", f"{URL}/1/count", {Role.MARKETER, Role.COMPLIANCE}),
    ("POST", f"{URL}/preview", {Role.MARKETER, Role.COMPLIANCE}),
]


@pytest.mark.parametrize(("method", "path", "roles"), ROUTES)
def test_who_may_call_what(client, session, people, make_key, method, path, roles):
    service.create(session, "Pro", PRO)
    body = {"name": "Another", "rules": PRO}
    if path.endswith("preview"):
        body = {"rules": PRO}
    anonymous = client.open(path, method=method, json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    for role in Role:
        body = {**body, "name": f"By {role.value}"} if "name" in body else body
        response = client.open(path, method=method, json=body, headers=make_key(role))
        if role is Role.ADMIN or role in roles:
            assert response.status_code in (200, 201), (role, response.get_json())
        else:
            assert response.status_code == 403, role
            assert "authorization" in response.get_json()["errors"]


def test_a_marketer_saves_lists_renames_and_counts(client, people, marketer):
    created = client.post(URL, json={"name": "Pro", "rules": PRO}, headers=marketer)
    assert created.status_code == 201
    body = created.get_json()
    assert body["name"] == "Pro" and body["rules"] == PRO
    listed = client.get(URL, headers=marketer).get_json()
    assert [s["name"] for s in listed] == ["Pro"]
    assert client.get(f"{URL}/{body['id']}/count", headers=marketer).get_json() == {"count": 1}

    everyone = {"any": [PRO, {"not": PRO}]}
    patched = client.patch(
        f"{URL}/{body['id']}", json={"name": "All", "rules": everyone}, headers=marketer
    )
    assert patched.status_code == 200
    assert patched.get_json()["name"] == "All"
    assert client.get(f"{URL}/{body['id']}", headers=marketer).get_json()["rules"] == everyone
    assert client.get(f"{URL}/{body['id']}/count", headers=marketer).get_json() == {"count": 2}


def test_preview_shows_the_count_and_a_sample_without_saving(client, people, marketer):
    response = client.post(f"{URL}/preview", json={"rules": PRO}, headers=marketer)
    assert response.status_code == 200
    assert response.get_json() == {
        "count": 1,
        "sample": [
            {"id": people.id, "email": "ann@example.org", "name": "Ann", "status": "active"}
        ],
    }
    assert client.get(URL, headers=marketer).get_json() == []


def test_errors_name_the_place_in_the_tree(client, world, marketer):
    rules = {"all": [PRO, PRO, {"field": "email", "op": "like", "value": "%"}]}
    response = client.post(URL, json={"name": "Bad", "rules": rules}, headers=marketer)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["rules.all.2.op"]

    typo = {"any": [{"field": "topic", "topic": "newz", "op": "exists"}]}
    response = client.post(f"{URL}/preview", json={"rules": typo}, headers=marketer)
    assert response.status_code == 422
    assert response.get_json()["errors"] == {"rules.any.0.topic": ["No topic with slug 'newz'."]}

    response = client.post(URL, json={"rules": PRO}, headers=marketer)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["name"]


def test_a_taken_name_is_a_conflict_and_an_unknown_id_is_not_found(client, world, marketer):
    assert client.post(URL, json={"name": "Pro", "rules": PRO}, headers=marketer).status_code == 201
    again = client.post(URL, json={"name": "Pro", "rules": PRO}, headers=marketer)
    assert again.status_code == 409
    assert again.get_json() == {"errors": {"name": ["A segment with this name exists."]}}
    for path in (f"{URL}/999", f"{URL}/999/count", f"{URL}/{10**30}"):
        response = client.get(path, headers=marketer)
        assert response.status_code == 404, path


def test_the_openapi_document_lists_the_segment_routes(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {
        "/api/v1/segments",
        "/api/v1/segments/{segment_id}",
        "/api/v1/segments/{segment_id}/count",
        "/api/v1/segments/preview",
    } <= set(paths)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
rule_like = st.fixed_dictionaries(
    {},
    optional={
        "field": st.sampled_from(["email", "attribute", "topic", "created_at", "campaign"])
        | json_values,
        "op": st.sampled_from(["eq", "in", "contains", "before", "opened", "exists"]) | json_values,
        "key": st.sampled_from(["plan", 'a"b', ""]) | json_values,
        "type": st.sampled_from(["string", "number", "date", "boolean"]) | json_values,
        "topic": json_values,
        "value": json_values,
        "all": st.lists(json_values, max_size=2),
        "not": json_values,
    },
)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rules=rule_like | json_values)
def test_bad_rules_get_an_answer_never_a_crash(client, world, marketer, rules):
    response = client.post(f"{URL}/preview", json={"rules": rules}, headers=marketer)
    assert response.status_code in (200, 422), response.get_data(as_text=True)
    if response.status_code == 422:
        assert all(f == "rules" or f.startswith("rules.") for f in response.get_json()["errors"])


def test_bodies_that_are_not_json_objects_are_refused(client, world, marketer):
    for body in ("not json", "[]", "null", json.dumps({"rules": PRO, "extra": 1})):
        response = client.post(
            f"{URL}/preview", data=body, headers=marketer, content_type="application/json"
        )
        assert response.status_code in (400, 422), body
        assert response.get_json()["errors"]
