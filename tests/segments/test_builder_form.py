"""The rule tree as the builder's form fields and back, without Flask or a database."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from mailer.segments import builder_form as bf
from mailer.segments import builder_tree as bt
from mailer.segments.catalog import Kind
from mailer.segments.choices import AttributeKey, Choices, Option
from mailer.segments.rules import MAX_CONDITIONS, validate_tree

FOUND = Choices(
    topics=(Option("news", "News (news)"),),
    forms=(Option("home", "Home (home)"),),
    attributes=(AttributeKey("plan", "string", 9), AttributeKey("seats", "number", 4)),
    topic_slugs={1: "news"},
    form_slugs={1: "home"},
)


def form(**fields: str | list[str]) -> MultiDict:
    """Form fields; `r_0__field` stands for `r.0-field`."""
    data = MultiDict()
    for name, value in fields.items():
        key = name.replace("__", "-").replace("_", ".")
        for item in value if isinstance(value, list) else [value]:
            data.add(key, item)
    return data


def test_the_form_is_read_into_a_tree_in_index_order():
    data = form(
        r__node="group",
        r__mode="any",
        **{f"r_{i}__node": "cond" for i in (10, 2, 9)},
        **{f"r_{i}__field": "open_count" for i in (10, 2, 9)},
        **{f"r_{i}__op": "gte" for i in (10, 2, 9)},
        **{f"r_{i}__value": str(i) for i in (10, 2, 9)},
        r_3_0__node="cond",  # its parent is missing: ignored
        r_x__node="cond",  # not a path: ignored
    )
    root, nodes = bf.parse(data)
    assert root.mode == "any"
    assert [c.values for c in root.children] == [["2"], ["9"], ["10"]]
    assert set(nodes) == {"r", "r.2", "r.9", "r.10"}
    tree, _places, errors = bt.to_tree(root)
    assert not errors
    assert tree == {"any": [{"field": "open_count", "op": "gte", "value": v} for v in (2, 9, 10)]}


def test_buttons_add_and_remove_conditions_and_groups():
    root, nodes = bf.parse(form(r__node="group", r_0__node="group", r_0__mode="all"))
    assert bf.apply(root, nodes, "add-cond:r.0")
    assert bf.apply(root, nodes, "add-group:r")
    assert [type(c).__name__ for c in root.children] == ["Group", "Group"]
    added = root.children[1]
    assert added.mode == "any" and len(added.children) == 1  # a group starts with a condition
    assert not bf.apply(root, nodes, "remove:r")  # the root stays
    assert not bf.apply(root, nodes, "remove:r.7")  # a stale page: nothing happens
    assert not bf.apply(root, nodes, "add-cond:r.0.0")  # not a group
    assert bf.apply(root, nodes, "remove:r.0")
    assert root.children == [added]


def test_groups_and_conditions_have_their_limits():
    deep = form(**{f"r{'_0' * i}__node": "group" for i in range(6)})
    root, nodes = bf.parse(deep)
    assert not bf.apply(root, nodes, "add-group:r" + ".0" * 5)
    assert bf.apply(root, nodes, "add-cond:r" + ".0" * 5)
    full = form(r__node="group", **{f"r_{i}__node": "cond" for i in range(MAX_CONDITIONS)})
    root, nodes = bf.parse(full)
    assert not bf.apply(root, nodes, "add-cond:r")
    assert root.errors == [f"At most {MAX_CONDITIONS} conditions in one segment."]


def test_a_new_field_gets_its_first_op_and_a_fitting_value():
    was = "email|string|contains"
    data = form(
        r__node="group",
        r_0__node="cond",
        r_0__field="open_count",
        r_0__op="contains",
        r_0__value="abc",
        r_0__was=was,
    )
    root, nodes = bf.parse(data)
    bf.adjust(root, nodes, data, FOUND)
    cond = root.children[0]
    assert (cond.op, cond.values) == ("gte", [])  # text does not fit a count: cleared
    # An attribute picked from the list gets the type its values have.
    data = form(
        r__node="group",
        r_0__node="cond",
        r_0__field="attribute:seats",
        r_0__type="string",
        r_0__op="eq",
        r_0__value="12",
        r_0__was="attribute:plan|string|eq",
    )
    root, nodes = bf.parse(data)
    bf.adjust(root, nodes, data, FOUND)
    cond = root.children[0]
    assert (cond.key, cond.type, cond.op, cond.values) == ("seats", "number", "eq", [])
    # One value to a list of values and back keeps what was typed.
    data = form(
        r__node="group",
        r_0__node="cond",
        r_0__field="email",
        r_0__op="in",
        r_0__value="a@x.org",
        r_0__was="email|string|eq",
    )
    root, nodes = bf.parse(data)
    bf.adjust(root, nodes, data, FOUND)
    assert root.children[0].values == ["a@x.org"]
    # A yes/no or a status starts with a choice made.
    data = form(
        r__node="group", r_0__node="cond", r_0__field="topic", r_0__op="eq", r_0__was="|string|"
    )
    root, nodes = bf.parse(data)
    bf.adjust(root, nodes, data, FOUND)
    assert root.children[0].values == ["active"]


def test_values_are_read_as_their_kind_and_left_as_text_when_they_do_not_parse():
    k = Kind
    assert bt.value_of(k.NUMBER, [" 12 "]) == 12
    assert bt.value_of(k.NUMBER, ["3,5"]) == 3.5
    assert bt.value_of(k.NUMBER, ["1e3"]) == 1000.0
    assert bt.value_of(k.NUMBER, ["1_000"]) == "1_000"
    assert bt.value_of(k.NUMBER, ["nan"]) == "nan"
    assert bt.value_of(k.NUMBER, ["1e999"]) == "1e999"
    assert bt.value_of(k.INTEGER, ["7"]) == 7 and bt.value_of(k.INTEGER, ["7.5"]) == "7.5"
    assert bt.value_of(k.DATETIME, ["2025-03-01"]) == "2025-03-01T00:00:00+00:00"
    assert bt.value_of(k.DATETIME, ["2025-03-01T10:00"]) == "2025-03-01T10:00"
    assert bt.value_of(k.BOOLEAN, ["false"]) is False
    assert bt.value_of(k.FORM, ["#12"]) == 12 and bt.value_of(k.FORM, ["home"]) == "home"
    assert bt.value_of(k.NUMBERS, ["1", "", "x"]) == [1, "x"]
    assert bt.value_of(k.TEXT, []) == ""


def test_negations_read_as_the_builder_shows_them_and_write_back_the_same():
    tree = {
        "not": {
            "all": [
                {"not": {"field": "campaign", "op": "opened", "value": 4}},
                {"not": {"not": {"field": "open_count", "op": "lt", "value": 2}}},
                {"not": {"field": "open_count", "op": "lt", "value": 2}},
                {"not": {"any": []}},
                {"field": "topic", "topic": 1, "op": "exists"},
                {"field": "form", "op": "in", "value": [1, 99, "home"]},
            ]
        }
    }
    root = bt.from_tree(validate_tree(tree), FOUND)
    assert root.mode == "notall"
    ops = [getattr(c, "op", None) for c in root.children]
    assert ops == ["not:opened", "lt", "not:lt", None, "exists", "in"]
    assert root.children[3].mode == "none"
    assert root.children[4].topic == "news"
    assert root.children[5].values == ["home", "#99", "home"]
    written, _places, _errors = bt.to_tree(root)
    assert written == {
        "not": {
            "all": [
                {"not": {"field": "campaign", "op": "opened", "value": 4}},
                {"field": "open_count", "op": "lt", "value": 2},
                {"not": {"field": "open_count", "op": "lt", "value": 2}},
                {"not": {"any": []}},
                {"field": "topic", "topic": "news", "op": "exists"},
                {"field": "form", "op": "in", "value": ["home", 99, "home"]},
            ]
        }
    }
    bare = bt.from_tree({"field": "status", "op": "eq", "value": "active"}, FOUND)
    assert bt.to_tree(bare)[0] == {"all": [{"field": "status", "op": "eq", "value": "active"}]}
    assert (
        bt.from_tree({"field": "attribute", "key": "ghost", "type": "date", "op": "exists"}, FOUND)
        .children[0]
        .custom_key
    )


def test_errors_land_on_the_condition_and_input_they_concern():
    data = form(
        r__node="group",
        r_0__node="cond",
        r_0__field="open_count",
        r_0__op="gte",
        r_0__value="many",
        r_1__node="group",
        r_1__mode="none",
        r_1_0__node="cond",
        r_1_0__field="attribute:",
        r_1_0__key="",
        r_1_0__type="number",
        r_1_0__op="not:in",
        r_1_0__value="1\nx",
        r_1_1__node="cond",
        r_1_1__field="",
        r_2__node="cond",
        r_2__field="email",
        r_2__op="eq",
        r_2__value="",
    )
    built = bf.build(data, FOUND)
    assert built.tree is None
    first, group, empty = built.root.children
    assert first.errors == {"value": ["Not a valid integer."]}
    bad, unchosen = group.children
    assert bad.errors["key"] == ["Enter the attribute's name."]
    assert unchosen.errors == {"field": ["Choose what to compare."]}
    assert empty.errors == {"value": ["Enter a value."]}
    assert bt.has_errors(built.root)
    # Fixed, the same form gives the tree; references are checked by the given function.
    data.setlist("r.0-value", ["3"])
    data.setlist("r.1.0-key", ["seats"])
    data.setlist("r.1.0-value", ["1\n2"])
    data.setlist("r.1.1-field", ["status"])
    data.setlist("r.1.1-op", ["eq"])
    data.setlist("r.1.1-value", ["active"])
    data.setlist("r.2-value", ["a@x.org"])
    seen = []
    built = bf.build(data, FOUND, references=lambda tree: seen.append(tree) or {})
    assert built.tree is not None and seen == [built.tree]
    assert built.tree["all"][1] == {
        "not": {
            "any": [
                {
                    "not": {
                        "field": "attribute",
                        "key": "seats",
                        "type": "number",
                        "op": "in",
                        "value": [1, 2],
                    }
                },
                {"field": "status", "op": "eq", "value": "active"},
            ]
        }
    }
    refused = bf.build(data, FOUND, references=lambda _t: {"rules.all.1.not.any.1.value": ["No."]})
    assert refused.tree is None
    assert refused.root.children[1].children[1].errors == {"value": ["No."]}


def test_list_errors_name_the_line_and_group_errors_stay_on_the_group():
    data = form(
        r__node="group",
        r__mode="sideways",
        r_0__node="cond",
        r_0__field="email_domain",
        r_0__op="in",
        r_0__value="example.org\nbad domain",
    )
    built = bf.build(data, FOUND)
    assert built.root.errors == ["Choose how the conditions combine."]
    data.setlist("r-mode", ["all"])
    built = bf.build(data, FOUND)
    assert built.root.children[0].errors == {"value": ["Line 2: A domain, without @."]}
