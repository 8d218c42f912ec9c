"""The rule tree schema: every mistake is named by its path in the tree, never a crash."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from mailer.api.errors import flatten
from mailer.segments.rules import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    RulesError,
    SegmentRules,
    validate_tree,
)

PLAN = {"field": "attribute", "key": "plan", "type": "string", "op": "eq", "value": "pro"}


def errors_of(tree: object) -> dict[str, list[str]]:
    with pytest.raises(RulesError) as caught:
        validate_tree(tree)
    return caught.value.errors


def test_an_unknown_op_is_named_by_its_path_through_the_schema():
    tree = {"all": [PLAN, PLAN, {"field": "email", "op": "like", "value": "%@x"}]}
    with pytest.raises(ValidationError) as caught:
        SegmentRules().load({"rules": tree})
    errors = flatten(caught.value.messages)
    assert list(errors) == ["rules.all.2.op"]
    assert "contains" in errors["rules.all.2.op"][0]  # it lists what is allowed


def test_unknown_fields_and_keys_are_errors_at_their_path():
    tree = {
        "any": [
            {"field": "emial", "op": "eq", "value": "a@b.c"},
            {"not": {**PLAN, "colour": "red"}},
            {"all": [PLAN], "note": "x"},
        ]
    }
    errors = errors_of(tree)
    assert set(errors) == {"rules.any.0.field", "rules.any.1.not.colour", "rules.any.2.note"}
    assert errors["rules.any.1.not.colour"] == ["Unknown field."]


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"field": "attribute", "key": "plan", "type": "text", "op": "eq", "value": "x"}, "type"),
        ({"field": "attribute", "type": "string", "op": "eq", "value": "x"}, "key"),
        ({"field": "attribute", "key": 'a"b', "type": "string", "op": "eq", "value": "x"}, "key"),
        ({"field": "attribute", "key": "n", "type": "number", "op": "eq", "value": "5"}, "value"),
        ({"field": "attribute", "key": "n", "type": "number", "op": "eq", "value": True}, "value"),
        (
            {"field": "attribute", "key": "n", "type": "number", "op": "in", "value": [1, "x"]},
            "value.1",
        ),
        (
            {"field": "attribute", "key": "b", "type": "boolean", "op": "eq", "value": "true"},
            "value",
        ),
        ({"field": "attribute", "key": "b", "type": "boolean", "op": "lt", "value": True}, "op"),
        (
            {"field": "attribute", "key": "d", "type": "date", "op": "lt", "value": "2024-13-01"},
            "value",
        ),
        ({"field": "attribute", "key": "s", "type": "string", "op": "exists", "value": 1}, "value"),
        (
            {"field": "attribute", "key": "s", "type": "string", "op": "contains", "value": ""},
            "value",
        ),
        ({"field": "topic", "op": "eq", "value": "active"}, "topic"),
        ({"field": "topic", "topic": "news", "op": "eq", "value": "subscribed"}, "value"),
        ({"field": "topic", "topic": "no spaces", "op": "exists"}, "topic"),
        ({"field": "form", "op": "eq", "value": 0}, "value"),
        ({"field": "created_at", "op": "before", "value": "yesterday"}, "value"),
        ({"field": "created_at", "op": "exists"}, "op"),
        ({"field": "last_open_at", "op": "within_last_days", "value": 0}, "value"),
        ({"field": "open_count", "op": "gt", "value": 1.5}, "value"),
        ({"field": "campaign", "op": "opened", "value": 2**40}, "value"),
        ({"field": "email_domain", "op": "eq", "value": "a@example.org"}, "value"),
        ({"field": "email", "op": "in", "value": []}, "value"),
        ({"field": "recent_campaigns", "op": "none_opened"}, "value"),
        ({"field": "status", "op": "eq", "value": "gone"}, "value"),
        ({"field": "email", "value": "a@b.c"}, "op"),
    ],
)
def test_each_bad_condition_names_the_bad_part(condition, path):
    errors = errors_of({"all": [PLAN, condition]})
    assert list(errors) == [f"rules.all.1.{path}"], errors


def test_rules_that_are_not_rules_are_named():
    assert list(errors_of("plan = pro")) == ["rules"]
    assert list(errors_of({"all": [PLAN, 7]})) == ["rules.all.1"]
    assert list(errors_of({"all": PLAN})) == ["rules.all"]
    assert list(errors_of({"all": [PLAN], "any": [PLAN]})) == ["rules"]
    assert list(errors_of({"op": "eq"})) == ["rules"]


def test_nesting_deeper_than_the_limit_is_refused_where_it_happens():
    tree: dict = PLAN
    for _ in range(MAX_DEPTH):
        tree = {"not": tree}
    assert validate_tree(tree)  # exactly at the limit: fine
    errors = errors_of({"all": [tree]})
    path = "rules.all.0" + ".not" * (MAX_DEPTH - 1)
    assert list(errors) == [path]
    assert f"at most {MAX_DEPTH}" in errors[path][0]


def test_more_conditions_than_the_limit_is_refused():
    assert validate_tree({"any": [PLAN] * MAX_CONDITIONS})
    errors = errors_of({"any": [PLAN] * (MAX_CONDITIONS + 1)})
    assert list(errors) == ["rules"]
    assert str(MAX_CONDITIONS) in errors["rules"][0]


def test_the_normalised_tree_is_json_and_validates_to_itself():
    tree = {
        "all": [
            {"field": "created_at", "op": "after", "value": "2025-01-01T02:00:00+02:00"},
            {"field": "last_open_at", "op": "before", "value": "2025-03-01T00:00:00"},
            {
                "field": "attribute",
                "key": "due",
                "type": "date",
                "op": "in",
                "value": ["2025-01-31"],
            },
            {"any": []},
        ]
    }
    normal = validate_tree(tree)
    assert normal["all"][0]["value"] == "2025-01-01T00:00:00+00:00"
    assert normal["all"][1]["value"] == "2025-03-01T00:00:00+00:00"  # no offset: UTC
    assert validate_tree(normal) == normal


def test_an_out_of_range_date_time_is_an_error_not_a_crash():
    errors = errors_of(
        {"field": "created_at", "op": "before", "value": "0001-01-01T00:00:00+05:00"}
    )
    assert list(errors) == ["rules.value"]
