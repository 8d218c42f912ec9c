"""The builder's menu (fields, ops, value kinds), what exists to pick from, and rules in
words."""

from __future__ import annotations

from mailer.segments import catalog, choices, summary
from mailer.segments.catalog import Kind
from mailer.segments.grammar import ATTRIBUTE_OPS, ATTRIBUTE_TYPES, FIELDS


def test_the_menu_offers_every_op_of_the_grammar_and_nothing_else():
    for field_id, (_extra, ops) in FIELDS.items():
        if field_id == "attribute":
            for kind in ATTRIBUTE_TYPES:
                offered = {op.rule_op for op in catalog.ops_for("attribute", kind)}
                assert offered == set(ATTRIBUTE_OPS[kind]), kind
            continue
        offered = {op.rule_op for op in catalog.ops_for(field_id)}
        assert offered == set(ops), field_id
    assert {f.id for f in catalog.FIELD_LIST} == set(FIELDS)
    assert {f.group for f in catalog.FIELD_LIST} == set(catalog.GROUP_ORDER)


def test_ops_take_the_value_their_grammar_takes():
    # An op that takes no value in the grammar shows no input, and the other way round.
    for field_id, (_extra, ops) in FIELDS.items():
        kinds = ATTRIBUTE_TYPES if field_id == "attribute" else ("string",)
        for kind in kinds:
            grammar = ATTRIBUTE_OPS[kind] if field_id == "attribute" else ops
            for op in catalog.ops_for(field_id, kind):
                takes_value = grammar[op.rule_op] is not None
                assert (op.kind is not Kind.NONE) == takes_value, (field_id, kind, op.id)
                assert op.kind.is_list == (op.rule_op == "in"), (field_id, op.id)


def test_negated_twins_and_ops_the_menu_does_not_list():
    did_not_open = catalog.op_for("campaign", "string", "not:opened")
    assert did_not_open and did_not_open.label == "did not open" and did_not_open.negated
    # Any grammar op can be negated (a tree from the API), with a label that says so.
    not_less = catalog.op_for("open_count", "string", "not:lt")
    assert not_less is not None and not_less.label == "not: is less than"
    assert not_less.rule_op == "lt" and not_less.kind is Kind.INTEGER
    assert catalog.op_for("open_count", "string", "not:not:lt") is None
    assert catalog.op_for("open_count", "string", "contains") is None
    assert catalog.op_for("nothing", "string", "eq") is None
    assert catalog.negate("contains") == "not:contains" and catalog.negate("not:eq") == "eq"


def test_value_kinds_know_their_items_and_inputs():
    assert Kind.TEXTS.is_list and Kind.TEXTS.single is Kind.TEXT and Kind.TEXTS.lines
    assert Kind.FORMS.is_list and not Kind.FORMS.lines  # ticked, not typed
    assert not Kind.INTEGER.is_list and Kind.INTEGER.single is Kind.INTEGER


def test_attribute_keys_and_their_usual_type_come_from_the_profiles():
    documents = [
        {"plan": "pro", "seats": 3, "renews": "2025-01-31", "vip": True},
        {"plan": "free", "seats": "3", "renews": "2025-02-01T10:00:00Z"},
        {"plan": 7, "seats": 4.5, "bad key!": "x", " lead": "x", "nested": {"a": 1}},
        {"seats": None, "tags": ["a"]},
        "not a document",
    ]
    keys = choices.attribute_keys(documents)
    assert [(k.key, k.type, k.seen) for k in keys] == [
        ("plan", "string", 3),
        ("seats", "number", 3),
        ("renews", "date", 2),
        ("vip", "boolean", 1),
    ]
    assert len(choices.attribute_keys([{f"k{i}": 1 for i in range(300)}])) == choices.MAX_KEYS


def test_what_exists_is_loaded_from_the_database(world, session):
    world.subscriber("a@example.org", attributes={"plan": "pro"}, locale="nb")
    world.subscriber("b@example.org", attributes={"plan": "free", "age": 40}, locale="nb")
    world.subscriber("c@example.org", attributes={}, locale="da")
    found = choices.load(session)
    assert [o.value for o in found.topics] == ["deals", "events", "news"]  # by name
    assert found.topic_slugs[world.topics[0].id] == "news"
    assert [o.value for o in found.forms] == ["home", "shop"]
    assert found.campaigns[0].value == str(world.campaigns[-1].id)  # newest first
    assert "Issue 4" in found.campaigns[0].label and "draft" in found.campaigns[0].label
    assert [(k.key, k.type) for k in found.attributes] == [("plan", "string"), ("age", "number")]
    assert found.attribute_type("age") == "number" and not found.has_attribute("ghost")
    assert found.locales == ("nb", "da")


def test_rules_in_words():
    tree = {
        "all": [
            {"field": "email_domain", "op": "in", "value": ["example.org", "example.com"]},
            {
                "any": [
                    {
                        "field": "attribute",
                        "key": "vip",
                        "type": "boolean",
                        "op": "eq",
                        "value": True,
                    },
                    {"not": {"field": "campaign", "op": "clicked", "value": 3}},
                ]
            },
            {"not": {"any": [{"field": "created_at", "op": "within_last_days", "value": 7}]}},
            {"field": "confirmed_at", "op": "before", "value": "2025-01-01T00:00:00+00:00"},
            {"field": "last_open_at", "op": "after", "value": "2025-01-01T10:30:00+00:00"},
            {"field": "topic", "topic": "news", "op": "eq", "value": "active"},
            {"field": "recent_campaigns", "op": "none_opened", "value": 5},
        ]
    }
    assert summary.describe(tree, limit=1000) == (
        "Email domain is one of example.org, example.com"
        " and (vip is yes or did not click in campaign #3)"
        " and none of (signed up is in the last 7 days)"
        " and first confirmed is before 2025-01-01"
        " and last open is on or after 2025-01-01 10:30:00+00:00"
        " and subscription to news status is active"
        " and opened none of the last 5 campaigns received"
    )
    assert summary.describe({"all": []}) == "Everyone"
    assert summary.describe({"any": []}) == "No one"
    assert summary.describe({"not": {"any": []}}) == "Everyone"
    assert (
        summary.describe({"field": "status", "op": "eq", "value": "active"}) == "Status is active"
    )
    long = {"any": [{"field": "email", "op": "contains", "value": "x" * 50}] * 10}
    assert len(summary.describe(long, limit=100)) == 100
