"""The builder's nodes as a rule tree, and a rule tree as the builder's nodes.

Two kinds of "not": a group may be "none of" / "not all of" (`{"not": {"any"|"all": ...}}`),
and a condition's op may be a negated twin from the catalog (`not:contains`, written as
`{"not": condition}`). Any tree the API accepts reads back into this shape and is written out
meaning the same (double negations cancel; a bare condition at the top is put in an "all").

What was typed becomes JSON values where it parses (`value_of`) and stays text where it does
not, so that the schema's own message reaches the marketer. A tree written through the API
with surrounding spaces in its values reads back trimmed.

Errors from the schema (`rules.all.2.value.1`) are put back on the condition and the input
they concern: `to_tree` records the rule path of every node it writes, `attach` follows them.

Pure: no database, no Flask. `check` takes the reference check as a function.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailer.segments import catalog
from mailer.segments.builder_nodes import MODES, Condition, Errors, Group, Node, negate
from mailer.segments.catalog import Kind
from mailer.segments.choices import Choices
from mailer.segments.rules import RulesError, validate_tree

INPUTS = ("field", "key", "type", "topic", "op", "value")

_INTEGER = re.compile(r"^[+-]?[0-9]+\Z")
_DECIMAL = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
_UNKNOWN_ID = re.compile(r"^#[0-9]{1,10}\Z")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
MIDNIGHT = "T00:00:00+00:00"
_PICKED = (Kind.BOOLEAN, Kind.TOPIC_STATUS, Kind.STATUS, Kind.FORM, Kind.CAMPAIGN)


# Nodes -> rule tree -------------------------------------------------------------------------

Places = list[tuple[str, Node]]


def to_tree(root: Group) -> tuple[dict[str, Any], Places, Errors]:
    """The rule tree (not yet validated), where each node went (rule paths under `rules`),
    and errors the schema could not see (an unknown group mode)."""
    places: Places = []
    errors: Errors = {}
    tree = _rule(root, "rules", places, errors)
    return tree, places, errors


def _rule(node: Node, path: str, places: Places, errors: Errors) -> dict[str, Any]:
    places.append((path, node))
    if isinstance(node, Group):
        if node.mode not in MODES:
            errors.setdefault(path, []).append("Choose how the conditions combine.")
        kind, negated = MODES.get(node.mode, ("all", False))
        inner = f"{path}.not" if negated else path
        if negated:
            places.append((inner, node))
        children = [
            _rule(child, f"{inner}.{kind}.{i}", places, errors)
            for i, child in enumerate(node.children)
        ]
        group: dict[str, Any] = {kind: children}
        return {"not": group} if negated else group
    op = node.op_info
    negated = op.negated if op else node.op.startswith(catalog.NOT)
    if negated:
        places.append((f"{path}.not", node))
    rule: dict[str, Any] = {"field": node.field}
    if node.field == "attribute":
        rule["key"], rule["type"] = node.key, node.type
    if node.field == "topic":
        rule["topic"] = _ref(node.topic.strip())
    rule["op"] = node.op.removeprefix(catalog.NOT)
    if op is not None and op.kind is not Kind.NONE:
        rule["value"] = value_of(op.kind, node.values)
    return {"not": rule} if negated else rule


def value_of(kind: Kind, values: list[str]) -> Any:
    """The JSON value of what was typed; left as text where it does not parse, so that the
    schema's own message ("Not a valid number.") reaches the marketer."""
    if kind.is_list:
        return [_one(kind.single, v.strip()) for v in values if v.strip()]
    return _one(kind, values[0].strip() if values else "")


def _one(kind: Kind, text: str) -> Any:
    if kind is Kind.NUMBER:
        return _number(text)
    if kind in (Kind.INTEGER, Kind.CAMPAIGN):
        return int(text) if _INTEGER.match(text) else text
    if kind is Kind.BOOLEAN:
        return {"true": True, "false": False}.get(text, text)
    if kind is Kind.DATETIME and _DAY.match(text):
        return text + MIDNIGHT
    if kind is Kind.FORM:
        return _ref(text)
    return text


def _ref(text: str) -> str | int:
    """A topic or form: its slug as picked, or `#7` for an id that names nothing we know
    (kept as the id, so that the error says so and saving does not change what it meant)."""
    return int(text[1:]) if _UNKNOWN_ID.match(text) else text


def _number(text: str) -> Any:
    if _INTEGER.match(text):
        return int(text)
    spelled = text.replace(",", ".") if text.count(",") == 1 and "." not in text else text
    if _DECIMAL.match(spelled):
        number = float(spelled)
        if math.isfinite(number):
            return number
    return text


# Rule tree -> nodes -------------------------------------------------------------------------


def from_tree(tree: dict[str, Any], choices: Choices) -> Group:
    """The builder's nodes for a (normalised) tree; the root is always a group."""
    node = _node(tree, choices)
    return node if isinstance(node, Group) else Group("all", [node])


def _node(raw: dict[str, Any], choices: Choices) -> Node:
    for kind in ("all", "any"):
        if kind in raw:
            return Group(kind, [_node(child, choices) for child in raw[kind]])
    if "not" in raw:
        return negate(_node(raw["not"], choices))
    cond = Condition(field=str(raw.get("field", "")), op=str(raw.get("op", "")))
    if cond.field == "attribute":
        cond.key, cond.type = str(raw.get("key", "")), str(raw.get("type", "string"))
        cond.custom_key = not choices.has_attribute(cond.key)
    if cond.field == "topic":
        topic = raw.get("topic")
        known = choices.topic_slugs
        cond.topic = known.get(topic, f"#{topic}") if isinstance(topic, int) else str(topic)
    if "value" in raw:
        value = raw["value"]
        items = value if isinstance(value, list) else [value]
        cond.values = [_shown(cond, item, choices) for item in items]
    return cond


def _shown(cond: Condition, value: Any, choices: Choices) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if cond.field == "form" and isinstance(value, int):
            return choices.form_slugs.get(value, f"#{value}")
        return json.dumps(value)
    text = str(value)
    if cond.kind is Kind.DATETIME and text.endswith(MIDNIGHT) and _DAY.match(text[:10]):
        return text[:10]
    return text


# Errors onto nodes --------------------------------------------------------------------------


def attach(root: Group, places: Places, errors: Errors) -> None:
    """Put each error (by rule path) on the node it concerns: the one with the longest rule
    path that is a prefix of it; conditions keep it by input (`value`, `op`, ...)."""
    for path, messages in errors.items():
        node, rest = root, ""
        best = -1
        for place, candidate in places:
            if (path == place or path.startswith(place + ".")) and len(place) > best:
                node, rest, best = candidate, path[len(place) + 1 :], len(place)
        if isinstance(node, Group):
            node.errors.extend(m for m in messages if m not in node.errors)
            continue
        name, _, index = rest.partition(".")
        name = name if name in INPUTS else ""
        node.errors.setdefault(name, []).extend(_friendly(node, name, index, m) for m in messages)


def _friendly(cond: Condition, name: str, index: str, message: str) -> str:
    """The schema's messages, said for the form a marketer sees."""
    kind = cond.kind
    if name == "field" and not cond.field:
        return "Choose what to compare."
    if name == "key" and not cond.key:
        return "Enter the attribute's name."
    if name == "topic" and not cond.topic:
        return "Choose a topic."
    if name == "value" and cond.blank and not index:
        return "Choose a value." if kind in _PICKED or (kind and kind.is_list) else "Enter a value."
    if name == "value" and index.isdigit() and kind is not None and kind.lines:
        return f"Line {int(index) + 1}: {message}"
    if name == "value" and index.isdigit() and int(index) < len(cond.values):
        return f"{cond.values[int(index)]}: {message}"
    return message


def has_errors(root: Group) -> bool:
    if root.errors:
        return True
    return any(has_errors(c) if isinstance(c, Group) else bool(c.errors) for c in root.children)


# Checked ------------------------------------------------------------------------------------


@dataclass
class Built:
    root: Group
    tree: dict[str, Any] | None  # normalised and checked; None while anything is wrong
    errors: Errors  # by rule path


def check(root: Group, references: Callable[[dict[str, Any]], Errors] | None = None) -> Built:
    raw, places, errors = to_tree(root)
    tree = None
    if not errors:
        try:
            tree = validate_tree(raw)
        except RulesError as exc:
            errors = exc.errors
    if tree is not None and references is not None:
        errors = references(tree)
        if errors:
            tree = None
    if root.errors:
        tree = None
    attach(root, places, errors)
    return Built(root, tree, errors)
