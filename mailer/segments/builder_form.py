"""The segment rule tree as form fields, and back: what the admin's rule builder posts.

The builder is drawn by the server. Each node of the tree is a set of form fields named by
its position, `r` for the root group and `r.0.2` for the third child of the first child:

    r-node = group        r-mode = all | any | none | notall
    r.0-node = cond       r.0-field = email | topic | attribute:plan | attribute: | ...
    r.0-op, r.0-value (repeated, or one per line), r.0-key, r.0-type, r.0-topic
    r.0-was = "field|type|op" as drawn, so a re-draw can tell what the marketer changed

Buttons post an action (`add-cond:r.1`, `add-group:r`, `remove:r.0.2`); the server applies it
and draws the builder again, so it needs no script of its own and a reload loses nothing.

Two kinds of "not": a group may be "none of" / "not all of" (`{"not": {"any"|"all": ...}}`),
and a condition's op may be a negated twin from the catalog (`not:contains`, written as
`{"not": condition}`). Any tree the API accepts reads back into this shape and is written out
meaning the same (double negations cancel; a bare condition at the top is put in an "all").

Values are trimmed of surrounding spaces and a list is typed one item per line (blank lines
dropped): a space typed by mistake would otherwise make a condition silently match no one. A
tree written through the API with such spaces reads back trimmed.

Errors from the schema (`rules.all.2.value.1`) are put back on the condition and the input
they concern: `to_tree` records the rule path of every node it writes.

Pure: no database, no Flask. `build` takes the reference check as a function.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mailer.segments import catalog
from mailer.segments.catalog import Kind
from mailer.segments.choices import Choices
from mailer.segments.rules import MAX_CONDITIONS, MAX_DEPTH, RulesError, validate_tree

ROOT = "r"
PATH = re.compile(r"^r(\.[0-9]{1,3}){0,12}\Z")
MAX_NODES = 2 * MAX_CONDITIONS + 20
ATTRIBUTE = "attribute:"
INPUTS = ("field", "key", "type", "topic", "op", "value")

# mode -> (group key, negated)
MODES = {
    "all": ("all", False),
    "any": ("any", False),
    "none": ("any", True),
    "notall": ("all", True),
}
MODE_LABELS = (
    ("all", "all of these"),
    ("any", "any of these"),
    ("none", "none of these"),
    ("notall", "not all of these"),
)
_NEGATED_MODE = {"all": "notall", "notall": "all", "any": "none", "none": "any"}

_INTEGER = re.compile(r"^[+-]?[0-9]+\Z")
_DECIMAL = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
_UNKNOWN_ID = re.compile(r"^#[0-9]{1,10}\Z")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
MIDNIGHT = "T00:00:00+00:00"
_PICKED = (Kind.BOOLEAN, Kind.TOPIC_STATUS, Kind.STATUS, Kind.FORM, Kind.CAMPAIGN)
_DEFAULTS = {Kind.BOOLEAN: "true", Kind.TOPIC_STATUS: "active", Kind.STATUS: "active"}

Errors = dict[str, list[str]]


class FormData(Protocol):
    """What a posted form offers (werkzeug's MultiDict has it)."""

    def __iter__(self) -> Any: ...

    def get(self, key: str, default: Any = None) -> Any: ...

    def getlist(self, key: str) -> list[Any]: ...


@dataclass
class Condition:
    field: str = ""  # the grammar's field; "" while not chosen
    op: str = ""  # a catalog op id (`contains`, `not:contains`)
    values: list[str] = dataclasses.field(default_factory=list)  # as typed
    key: str = ""  # attribute
    type: str = "string"  # attribute
    custom_key: bool = False  # attribute: typed by hand rather than picked
    topic: str = ""  # topic slug (or id as text)
    # By input name ("" for the condition as a whole).
    errors: Errors = dataclasses.field(default_factory=dict)

    is_group = False

    @property
    def choice(self) -> str:
        """The value of the field menu for this condition."""
        if self.field == "attribute":
            return ATTRIBUTE if self.custom_key else ATTRIBUTE + self.key
        return self.field

    @property
    def op_info(self) -> catalog.Op | None:
        return catalog.op_for(self.field, self.type, self.op) if self.field else None

    @property
    def kind(self) -> Kind | None:
        op = self.op_info
        return op.kind if op else None

    @property
    def was(self) -> str:
        return f"{self.choice}|{self.type}|{self.op}"

    @property
    def text(self) -> str:
        """The value as a textarea shows it (one per line)."""
        return "\n".join(self.values)

    @property
    def first(self) -> str:
        return self.values[0] if self.values else ""

    @property
    def blank(self) -> bool:
        return not any(v.strip() for v in self.values)


@dataclass
class Group:
    mode: str = "all"
    children: list[Node] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)

    is_group = True

    def conditions(self) -> int:
        return sum(c.conditions() if isinstance(c, Group) else 1 for c in self.children)


Node = Group | Condition


# Form -> nodes ------------------------------------------------------------------------------


def _order(path: str) -> list[int]:
    return [int(part) for part in path.split(".")[1:]]


def parse(form: FormData) -> tuple[Group, dict[str, Node]]:
    """The tree the form describes, and each node by the path it was posted under. Fields of
    malformed or orphaned paths are ignored; past `MAX_NODES` nodes the rest are dropped with
    an error on the root."""
    kinds = {}
    for name in form:
        if isinstance(name, str) and name.endswith("-node") and PATH.match(name[:-5]):
            kinds[name[:-5]] = form.get(name)
    root = _group(form, ROOT)
    nodes: dict[str, Node] = {ROOT: root}
    paths = sorted((p for p in kinds if p != ROOT), key=_order)
    if len(paths) > MAX_NODES:
        root.errors.append(f"At most {MAX_CONDITIONS} conditions in one segment.")
        paths = paths[:MAX_NODES]
    for path in paths:
        parent = nodes.get(path.rsplit(".", 1)[0])
        if not isinstance(parent, Group):
            continue
        node = _group(form, path) if kinds[path] == "group" else _condition(form, path)
        parent.children.append(node)
        nodes[path] = node
    return root, nodes


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _group(form: FormData, path: str) -> Group:
    return Group(mode=_text(form, f"{path}-mode") or "all")


def _condition(form: FormData, path: str) -> Condition:
    choice = _text(form, f"{path}-field")
    cond = Condition(op=_text(form, f"{path}-op"), topic=_text(form, f"{path}-topic").strip())
    if choice.startswith(ATTRIBUTE):
        cond.field = "attribute"
        picked = choice.removeprefix(ATTRIBUTE)
        cond.custom_key = not picked
        cond.key = picked or _text(form, f"{path}-key").strip()
        cond.type = _text(form, f"{path}-type") or "string"
    else:
        cond.field = choice
    # One item per line (a textarea), per box ticked, or the one input's text.
    raw = [v for v in form.getlist(f"{path}-value") if isinstance(v, str)]
    cond.values = [line.strip() for v in raw for line in v.splitlines() if line.strip()]
    return cond


# Actions ------------------------------------------------------------------------------------


def depth(path: str) -> int:
    """How deep a group at `path` sits (the root is 1)."""
    return path.count(".") + 1


def apply(root: Group, nodes: dict[str, Node], action: str) -> bool:
    """Add a condition or a group to the group at a path, or remove the node at a path.
    False when the action names nothing (a stale page): the tree is left as it was."""
    verb, _, path = action.partition(":")
    node = nodes.get(path)
    if verb in ("add-cond", "add-group") and isinstance(node, Group):
        if root.conditions() >= MAX_CONDITIONS:
            root.errors.append(f"At most {MAX_CONDITIONS} conditions in one segment.")
            return False
        if verb == "add-cond":
            node.children.append(Condition())
        elif depth(path) < MAX_DEPTH:
            node.children.append(Group(mode="any", children=[Condition()]))
        else:
            node.errors.append(f"Groups nest at most {MAX_DEPTH} levels deep.")
            return False
        return True
    if verb == "remove" and path != ROOT and node is not None:
        parent = nodes.get(path.rsplit(".", 1)[0])
        if isinstance(parent, Group):
            parent.children = [c for c in parent.children if c is not node]
            return True
    return False


def adjust(root: Group, nodes: dict[str, Node], form: FormData, choices: Choices) -> None:
    """After a menu changed: a new field gets its first op, an attribute picked from the list
    gets its usual type, and a value that no longer fits the op's input is cleared."""
    for path, node in nodes.items():
        if not isinstance(node, Condition):
            continue
        was_choice, _, rest = _text(form, f"{path}-was").partition("|")
        was_type, _, was_op = rest.partition("|")
        if node.choice != was_choice and node.field == "attribute" and not node.custom_key:
            node.type = choices.attribute_type(node.key) or "string"
        ops = catalog.ops_for(node.field, node.type)
        if not ops:
            node.op, node.values = "", []
            continue
        if catalog.op_for(node.field, node.type, node.op) is None:
            node.op = ops[0].id
        was_field = "attribute" if was_choice.startswith(ATTRIBUTE) else was_choice
        before = catalog.op_for(was_field, was_type or "string", was_op) if was_field else None
        now = node.kind
        assert now is not None
        if before is None or before.kind.single is not now.single:
            node.values = [_DEFAULTS[now]] if now in _DEFAULTS else []
        elif not now.is_list:
            node.values = node.values[:1]


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


def negate(node: Node) -> Node:
    if isinstance(node, Group):
        node.mode = _NEGATED_MODE.get(node.mode, node.mode)
    else:
        node.op = catalog.negate(node.op)
    return node


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


# All of it ----------------------------------------------------------------------------------


@dataclass
class Built:
    root: Group
    tree: dict[str, Any] | None  # normalised and checked; None while anything is wrong
    errors: Errors  # by rule path


def build(
    form: FormData,
    choices: Choices,
    action: str = "",
    references: Callable[[dict[str, Any]], Errors] | None = None,
) -> Built:
    """Read the form, apply the action (a re-draw after a menu change also `adjust`s), and
    check the result: the tree when valid, else the errors put on their nodes."""
    root, nodes = parse(form)
    if action and action != "save":
        apply(root, nodes, action)
        adjust(root, nodes, form, choices)
    return check(root, references)


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
