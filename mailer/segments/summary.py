"""A rule tree in one line of plain words, for the list of segments:
"Email domain is example.com and (plan is pro or number of opens is at least 3)".

Pure: reads the builder's nodes (so negations read as the builder shows them).
"""

from __future__ import annotations

from typing import Any

from mailer.segments import catalog
from mailer.segments.builder_nodes import Condition, Node
from mailer.segments.builder_tree import MIDNIGHT, from_tree
from mailer.segments.catalog import Kind
from mailer.segments.choices import Choices

_YES_NO = {"true": "yes", "false": "no"}


def describe(tree: dict[str, Any], choices: Choices | None = None, limit: int = 300) -> str:
    """The rules in words, cut at `limit` characters."""
    choices = choices or Choices()
    text = _node(from_tree(tree, choices), choices, top=True)
    text = text[:1].upper() + text[1:]
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _node(node: Node, choices: Choices, top: bool = False) -> str:
    if isinstance(node, Condition):
        return _condition(node, choices)
    if not node.children:
        return "everyone" if node.mode in ("all", "none") else "no one"
    joiner = " and " if node.mode in ("all", "notall") else " or "
    inner = joiner.join(_node(child, choices) for child in node.children)
    if node.mode == "none":
        return f"none of ({inner})"
    if node.mode == "notall":
        return f"not all of ({inner})"
    return inner if top or len(node.children) == 1 else f"({inner})"


def _condition(cond: Condition, choices: Choices) -> str:
    op = cond.op_info
    spec = catalog.field(cond.field)
    if op is None or spec is None:
        return f"{cond.field or '?'} {cond.op or '?'}".strip()
    if cond.field == "attribute":
        subject = cond.key
    elif cond.field == "topic":
        subject = f"subscription to {cond.topic}"
    elif cond.field == "campaign":
        return f"{op.label} campaign {_values(cond, op.kind, choices)}"
    elif cond.field == "recent_campaigns":
        return f"{op.label} {_values(cond, op.kind, choices)} {op.unit}"
    else:
        subject = spec.label.lower() if spec.label != "Language" else "language"
    words = f"{subject} {op.label}"
    if op.kind is Kind.NONE:
        return words
    unit = f" {op.unit}" if op.unit else ""
    return f"{words} {_values(cond, op.kind, choices)}{unit}"


def _values(cond: Condition, kind: Kind, choices: Choices) -> str:
    return ", ".join(_value(v, kind.single, choices) for v in cond.values) or "?"


def _value(value: str, kind: Kind, choices: Choices) -> str:
    if kind is Kind.BOOLEAN:
        return _YES_NO.get(value, value)
    if kind is Kind.CAMPAIGN:
        return choices.label(choices.campaigns, value) if choices.campaigns else f"#{value}"
    if kind is Kind.DATETIME and not value.endswith(MIDNIGHT) and "T" in value:
        return value.replace("T", " ")
    return value
