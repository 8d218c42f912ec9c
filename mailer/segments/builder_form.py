"""The segment builder as form fields: what the admin's rule builder posts, and its buttons.

The builder is drawn by the server. Each node of the tree is a set of form fields named by
its position, `r` for the root group and `r.0.2` for the third child of the first child:

    r-node = group        r-mode = all | any | none | notall
    r.0-node = cond       r.0-field = email | topic | attribute:plan | attribute: | ...
    r.0-op, r.0-value (repeated, or one per line), r.0-key, r.0-type, r.0-topic
    r.0-was = "field|type|op" as drawn, so a re-draw can tell what the marketer changed

Buttons post an action (`add-cond:r.1`, `add-group:r`, `remove:r.0.2`); the server applies it
and draws the builder again, so it needs no script of its own and a reload loses nothing.

Values are trimmed of surrounding spaces and a list is typed one item per line (blank lines
dropped): a space typed by mistake would otherwise make a condition silently match no one.

The nodes are `builder_nodes`; turning them into a checked rule tree (and errors back onto
the inputs) is `builder_tree`. `build` runs the whole round.

Pure: no database, no Flask. `build` takes the reference check as a function.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from mailer.segments import catalog
from mailer.segments.builder_nodes import ATTRIBUTE, Condition, Errors, Group, Node
from mailer.segments.builder_tree import Built, check
from mailer.segments.catalog import Kind
from mailer.segments.choices import Choices
from mailer.segments.rules import MAX_CONDITIONS, MAX_DEPTH

ROOT = "r"
PATH = re.compile(r"^r(\.[0-9]{1,3}){0,12}\Z")
MAX_NODES = 2 * MAX_CONDITIONS + 20
_DEFAULTS = {Kind.BOOLEAN: "true", Kind.TOPIC_STATUS: "active", Kind.STATUS: "active"}


class FormData(Protocol):
    """What a posted form offers (werkzeug's MultiDict has it)."""

    def __iter__(self) -> Any: ...

    def get(self, key: str, default: Any = None) -> Any: ...

    def getlist(self, key: str) -> list[Any]: ...


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


# All of it ----------------------------------------------------------------------------------


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
