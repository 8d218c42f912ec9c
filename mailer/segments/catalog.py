"""What a marketer can pick in the segment builder: fields, their operators and the kind of
value each operator takes, in plain words.

The grammar itself lives in `mailer.segments.grammar`; this is its menu. Every op the grammar
has for a field is here (so any saved tree can be shown), and a few have a negated twin
(`not:contains`, label "does not contain") that the builder writes as `{"not": condition}`,
because "did not open campaign X" is what people ask for, not "not (opened campaign X)".

Pure data and functions: no database, no Flask.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

NOT = "not:"


class Kind(enum.Enum):
    """The value an op takes, which decides the input the builder shows."""

    NONE = "none"
    TEXT = "text"
    TEXTS = "texts"  # one per line
    NUMBER = "number"
    NUMBERS = "numbers"
    INTEGER = "integer"
    DATE = "date"  # YYYY-MM-DD (attribute dates)
    DATES = "dates"
    DATETIME = "datetime"  # a day (midnight UTC) or a full ISO date-time
    BOOLEAN = "boolean"
    TOPIC_STATUS = "topic_status"
    TOPIC_STATUSES = "topic_statuses"
    STATUS = "status"
    STATUSES = "statuses"
    FORM = "form"
    FORMS = "forms"
    CAMPAIGN = "campaign"
    LOCALE = "locale"
    LOCALES = "locales"

    @property
    def is_list(self) -> bool:
        return self in _LISTS

    @property
    def single(self) -> Kind:
        """The kind of one item (a list's item, or itself)."""
        return _LISTS.get(self, self)

    @property
    def lines(self) -> bool:
        """Typed one item per line (a textarea), rather than ticked."""
        return self in (Kind.TEXTS, Kind.NUMBERS, Kind.DATES, Kind.LOCALES)


_LISTS = {
    Kind.TEXTS: Kind.TEXT,
    Kind.NUMBERS: Kind.NUMBER,
    Kind.DATES: Kind.DATE,
    Kind.TOPIC_STATUSES: Kind.TOPIC_STATUS,
    Kind.STATUSES: Kind.STATUS,
    Kind.FORMS: Kind.FORM,
    Kind.LOCALES: Kind.LOCALE,
}


@dataclass(frozen=True)
class Op:
    """`id` is the grammar's op, or `not:<op>` for its negated twin."""

    id: str
    label: str
    kind: Kind
    unit: str = ""  # shown after the value: "days", "campaigns"

    @property
    def negated(self) -> bool:
        return self.id.startswith(NOT)

    @property
    def rule_op(self) -> str:
        return self.id.removeprefix(NOT)


@dataclass(frozen=True)
class Field:
    id: str  # the grammar's field
    label: str
    group: str  # where the field list shows it
    ops: tuple[Op, ...]  # for `attribute`: the string ops (see `ops_for`)
    hint: str = ""


def _ops(*rows: tuple) -> tuple[Op, ...]:
    return tuple(Op(*row) for row in rows)


_MOMENT = (
    ("after", "is on or after", Kind.DATETIME),
    ("before", "is before", Kind.DATETIME),
    ("within_last_days", "is in the last", Kind.INTEGER, "days"),
    ("not:within_last_days", "is not in the last", Kind.INTEGER, "days"),
)
_COUNT = (
    ("gte", "is at least", Kind.INTEGER),
    ("lte", "is at most", Kind.INTEGER),
    ("eq", "is", Kind.INTEGER),
    ("ne", "is not", Kind.INTEGER),
    ("gt", "is more than", Kind.INTEGER),
    ("lt", "is less than", Kind.INTEGER),
)

SUBSCRIBER, TOPICS, ATTRIBUTES, ENGAGEMENT = "Subscriber", "Topics", "Attributes", "Engagement"

FIELD_LIST: tuple[Field, ...] = (
    Field(
        "email",
        "Email address",
        SUBSCRIBER,
        _ops(
            ("contains", "contains", Kind.TEXT),
            ("not:contains", "does not contain", Kind.TEXT),
            ("eq", "is", Kind.TEXT),
            ("not:eq", "is not", Kind.TEXT),
            ("starts_with", "starts with", Kind.TEXT),
            ("ends_with", "ends with", Kind.TEXT),
            ("in", "is one of", Kind.TEXTS),
            ("not:in", "is none of", Kind.TEXTS),
        ),
    ),
    Field(
        "email_domain",
        "Email domain",
        SUBSCRIBER,
        _ops(
            ("eq", "is", Kind.TEXT),
            ("not:eq", "is not", Kind.TEXT),
            ("in", "is one of", Kind.TEXTS),
            ("not:in", "is none of", Kind.TEXTS),
        ),
        "What follows the @, e.g. example.com",
    ),
    Field(
        "status",
        "Status",
        SUBSCRIBER,
        _ops(
            ("eq", "is", Kind.STATUS),
            ("ne", "is not", Kind.STATUS),
            ("in", "is one of", Kind.STATUSES),
        ),
    ),
    Field(
        "locale",
        "Language",
        SUBSCRIBER,
        _ops(
            ("eq", "is", Kind.LOCALE),
            ("ne", "is not", Kind.LOCALE),
            ("in", "is one of", Kind.LOCALES),
            ("not:in", "is none of", Kind.LOCALES),
        ),
        "A language code such as en, nb, da",
    ),
    Field(
        "form",
        "Signed up through form",
        SUBSCRIBER,
        _ops(
            ("eq", "is", Kind.FORM),
            ("not:eq", "is not", Kind.FORM),
            ("in", "is one of", Kind.FORMS),
            ("not:in", "is none of", Kind.FORMS),
            ("exists", "is known", Kind.NONE),
            ("not_exists", "is unknown (imported or added by API)", Kind.NONE),
        ),
    ),
    Field("created_at", "Signed up", SUBSCRIBER, _ops(*_MOMENT)),
    Field(
        "confirmed_at",
        "First confirmed",
        SUBSCRIBER,
        _ops(
            *_MOMENT,
            ("exists", "has happened", Kind.NONE),
            ("not_exists", "never happened", Kind.NONE),
        ),
    ),
    Field(
        "topic",
        "Topic subscription",
        TOPICS,
        _ops(
            ("eq", "status is", Kind.TOPIC_STATUS),
            ("not:eq", "status is not", Kind.TOPIC_STATUS),
            ("in", "status is one of", Kind.TOPIC_STATUSES),
            ("exists", "exists (any status)", Kind.NONE),
            ("not_exists", "does not exist", Kind.NONE),
        ),
        "Active: confirmed and not withdrawn",
    ),
    Field(
        "attribute",
        "Attribute",
        ATTRIBUTES,
        (),
        "Compared as the chosen type; a value of another type never matches",
    ),
    Field(
        "last_open_at",
        "Last open",
        ENGAGEMENT,
        _ops(
            *_MOMENT,
            ("exists", "has happened", Kind.NONE),
            ("not_exists", "never happened", Kind.NONE),
        ),
        "Opens by people; privacy proxies and scanners do not count",
    ),
    Field(
        "last_click_at",
        "Last click",
        ENGAGEMENT,
        _ops(
            *_MOMENT,
            ("exists", "has happened", Kind.NONE),
            ("not_exists", "never happened", Kind.NONE),
        ),
    ),
    Field(
        "open_count",
        "Number of opens",
        ENGAGEMENT,
        _ops(*_COUNT),
        "Opens by people; privacy proxies and scanners do not count",
    ),
    Field("click_count", "Number of clicks", ENGAGEMENT, _ops(*_COUNT)),
    Field("bounce_count", "Number of bounces", ENGAGEMENT, _ops(*_COUNT)),
    Field(
        "campaign",
        "Campaign",
        ENGAGEMENT,
        _ops(
            ("opened", "opened", Kind.CAMPAIGN),
            ("not:opened", "did not open", Kind.CAMPAIGN),
            ("clicked", "clicked in", Kind.CAMPAIGN),
            ("not:clicked", "did not click in", Kind.CAMPAIGN),
            ("received", "received", Kind.CAMPAIGN),
            ("not:received", "did not receive", Kind.CAMPAIGN),
        ),
    ),
    Field(
        "recent_campaigns",
        "Recent campaigns",
        ENGAGEMENT,
        _ops(
            ("none_opened", "opened none of the last", Kind.INTEGER, "campaigns received"),
            ("none_clicked", "clicked in none of the last", Kind.INTEGER, "campaigns received"),
        ),
        "Judged on the campaigns each person received; someone who received none never matches",
    ),
)
FIELDS_BY_ID = {f.id: f for f in FIELD_LIST}
GROUP_ORDER = (SUBSCRIBER, TOPICS, ATTRIBUTES, ENGAGEMENT)

TYPE_LABELS = {"string": "text", "number": "number", "date": "date", "boolean": "yes/no"}
_ATTRIBUTE_OPS: dict[str, tuple[Op, ...]] = {
    "string": _ops(
        ("eq", "is", Kind.TEXT),
        ("ne", "is not", Kind.TEXT),
        ("contains", "contains", Kind.TEXT),
        ("not:contains", "does not contain", Kind.TEXT),
        ("starts_with", "starts with", Kind.TEXT),
        ("ends_with", "ends with", Kind.TEXT),
        ("in", "is one of", Kind.TEXTS),
        ("not:in", "is none of", Kind.TEXTS),
        ("lt", "sorts before", Kind.TEXT),
        ("lte", "sorts before or is", Kind.TEXT),
        ("gt", "sorts after", Kind.TEXT),
        ("gte", "sorts after or is", Kind.TEXT),
        ("exists", "has a text value", Kind.NONE),
        ("not_exists", "has no text value", Kind.NONE),
    ),
    "number": _ops(
        ("eq", "is", Kind.NUMBER),
        ("ne", "is not", Kind.NUMBER),
        ("gte", "is at least", Kind.NUMBER),
        ("lte", "is at most", Kind.NUMBER),
        ("gt", "is more than", Kind.NUMBER),
        ("lt", "is less than", Kind.NUMBER),
        ("in", "is one of", Kind.NUMBERS),
        ("exists", "has a number", Kind.NONE),
        ("not_exists", "has no number", Kind.NONE),
    ),
    "date": _ops(
        ("eq", "is on", Kind.DATE),
        ("ne", "is not on", Kind.DATE),
        ("gte", "is on or after", Kind.DATE),
        ("lt", "is before", Kind.DATE),
        ("gt", "is after", Kind.DATE),
        ("lte", "is on or before", Kind.DATE),
        ("in", "is one of", Kind.DATES),
        ("exists", "has a date", Kind.NONE),
        ("not_exists", "has no date", Kind.NONE),
    ),
    "boolean": _ops(
        ("eq", "is", Kind.BOOLEAN),
        ("ne", "is not", Kind.BOOLEAN),
        ("exists", "is yes or no", Kind.NONE),
        ("not_exists", "is not set", Kind.NONE),
    ),
}


def field(field_id: str) -> Field | None:
    return FIELDS_BY_ID.get(field_id)


def ops_for(field_id: str, attribute_type: str = "string") -> tuple[Op, ...]:
    """The ops the builder offers for a field (an attribute: for its type); () if unknown."""
    if field_id == "attribute":
        return _ATTRIBUTE_OPS.get(attribute_type, ())
    found = FIELDS_BY_ID.get(field_id)
    return found.ops if found else ()


def op_for(field_id: str, attribute_type: str, op_id: str) -> Op | None:
    """The op by id, including a negated op the menu does not list (`not:lt` is "not (is
    less than)"), so that any tree the API accepted can be shown and saved back unchanged."""
    for op in ops_for(field_id, attribute_type):
        if op.id == op_id:
            return op
    if op_id.startswith(NOT):
        inner = op_for(field_id, attribute_type, op_id.removeprefix(NOT))
        if inner is not None and not inner.negated:
            return Op(op_id, f"not: {inner.label}", inner.kind, inner.unit)
    return None


def negate(op_id: str) -> str:
    """`contains` <-> `not:contains`."""
    return op_id.removeprefix(NOT) if op_id.startswith(NOT) else NOT + op_id
