"""The segment builder's own tree: groups and conditions as a marketer sees and edits them.

It is not the rule tree (`mailer.segments.rules`): a condition keeps what was typed (text,
one item per line) and its errors by input, a group has a mode that may be negated ("none
of", "not all of"), and an op may be a negated twin from the catalog (`not:contains`).
`builder_form` reads these nodes from a posted form and edits them, `builder_tree` turns them
into a rule tree and back, and `summary` reads them out in words.

Pure data: no database, no Flask.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mailer.segments import catalog
from mailer.segments.catalog import Kind

ATTRIBUTE = "attribute:"

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

Errors = dict[str, list[str]]


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


def negate(node: Node) -> Node:
    """The node turned into its opposite, in place: a group's mode or a condition's op flips
    to its twin, so double negations cancel."""
    if isinstance(node, Group):
        node.mode = _NEGATED_MODE.get(node.mode, node.mode)
    else:
        node.op = catalog.negate(node.op)
    return node
