"""The vocabulary of segment rules: which fields a condition may name, the ops each field
takes, and the value each op takes, as strict marshmallow fields.

`mailer.segments.rules` walks a tree and checks each condition against these tables; what
each field and op means is documented there, and the compiler, the evaluator and the
builder's menu (`mailer.segments.catalog`) all follow it. This module is the tables alone:
the one place that says what a well-formed condition is.

Values are strict JSON types: marshmallow's own fields coerce "1" to 1 and 1 to True, and a
rule that quietly changed type would match other people than the marketer meant.

Pure data and marshmallow fields: no database, no Flask.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from marshmallow import fields, validate

MAX_LIST = 100
MAX_TEXT = 1000
MAX_DAYS = 36500
MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1

SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
# SQLite's JSON paths cannot quote `"` or `\`, and match escaped (non-ASCII) keys unreliably.
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_.:/-][A-Za-z0-9_.:/ -]{0,63}\Z")
TOPIC_STATUSES = ("pending", "active", "unsubscribed")
SUBSCRIBER_STATUSES = ("pending", "active", "unsubscribed")
ATTRIBUTE_TYPES = ("string", "number", "date", "boolean")


# Value fields: strict JSON types (marshmallow's own coerce "1" to 1 and 1 to True).


class StrictInteger(fields.Integer):
    def __init__(self, minimum: int, maximum: int) -> None:
        super().__init__(strict=True, validate=validate.Range(minimum, maximum))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class JsonNumber(fields.Field):
    """A JSON number (int or float as parsed), never a boolean, NaN or infinity."""

    default_error_messages = {
        "invalid": "Not a valid number.",
        "too_large": f"Use an integer between -{MAX_INT64} and {MAX_INT64}.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.make_error("invalid")
        if isinstance(value, int) and abs(value) > MAX_INT64:
            raise self.make_error("too_large")
        return value


class StrictBoolean(fields.Field):
    default_error_messages = {"invalid": "Not a valid boolean; use true or false."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class IsoDate(fields.Date):
    """A date, kept as its ISO string in the normalised tree."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        parsed: date = super()._deserialize(value, attr, data, **kwargs)
        return parsed.isoformat()


class UtcDateTime(fields.AwareDateTime):
    """A date-time (no offset: UTC), kept as an ISO string in UTC in the normalised tree."""

    def __init__(self) -> None:
        super().__init__(format="iso", default_timezone=UTC)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        parsed: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(UTC).isoformat()
        except OverflowError as exc:
            raise self.make_error("invalid", input=value, obj_type="datetime") from exc


class SlugOrId(fields.Field):
    """A string is a slug, an integer an id."""

    default_error_messages = {"invalid": "Use a slug (text) or an id (a positive integer)."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | int:
        if isinstance(value, str) and SLUG.match(value):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_INT32:
            return value
        raise self.make_error("invalid")


def _text(min_length: int = 0, max_length: int = MAX_TEXT) -> fields.Field:
    return fields.String(validate=validate.Length(min_length, max_length))


def _domain() -> fields.Field:
    return fields.String(
        validate=[
            validate.Length(1, 253),
            validate.Regexp(r"^[^@\s]+\Z", error="A domain, without @."),
        ]
    )


def _choice(options: tuple[str, ...]) -> fields.Field:
    return fields.String(validate=validate.OneOf(options, error="Must be one of: {choices}."))


def _list(item: Callable[[], fields.Field]) -> Callable[[], fields.Field]:
    return lambda: fields.List(
        item(),
        validate=validate.Length(1, MAX_LIST, error=f"Give 1 to {MAX_LIST} values."),
    )


# The value each op takes; None: the op takes no value.
Value = Callable[[], fields.Field] | None

TEXT: Value = _text
NEEDLE: Value = lambda: _text(1)  # noqa: E731
EMAIL: Value = lambda: _text(1, 320)  # noqa: E731
NUMBER: Value = JsonNumber
DATE: Value = IsoDate
DATETIME: Value = UtcDateTime
DAYS: Value = lambda: StrictInteger(1, MAX_DAYS)  # noqa: E731
COUNT: Value = lambda: StrictInteger(0, MAX_INT32)  # noqa: E731
REF: Value = SlugOrId
CAMPAIGN: Value = lambda: StrictInteger(1, MAX_INT32)  # noqa: E731
RECENT: Value = lambda: StrictInteger(1, MAX_LIST)  # noqa: E731
LOCALE: Value = lambda: _text(1, 16)  # noqa: E731
TOPIC_STATUS: Value = lambda: _choice(TOPIC_STATUSES)  # noqa: E731
SUBSCRIBER_STATUS: Value = lambda: _choice(SUBSCRIBER_STATUSES)  # noqa: E731

COMPARE = ("eq", "ne", "lt", "lte", "gt", "gte")
DATE_COLUMN_OPS: dict[str, Value] = {
    "before": DATETIME,
    "after": DATETIME,
    "within_last_days": DAYS,
}
OPTIONAL_DATE_COLUMN_OPS: dict[str, Value] = {
    **DATE_COLUMN_OPS,
    "exists": None,
    "not_exists": None,
}
COUNT_OPS: dict[str, Value] = dict.fromkeys(COMPARE, COUNT)


def _typed(value: Value, *extra: str) -> dict[str, Value]:
    assert value is not None
    ops: dict[str, Value] = dict.fromkeys(COMPARE, value)
    ops["in"] = _list(value)
    for op in extra:
        ops[op] = NEEDLE
    ops["exists"] = None
    ops["not_exists"] = None
    return ops


ATTRIBUTE_OPS: dict[str, dict[str, Value]] = {
    "string": _typed(TEXT, "contains", "starts_with", "ends_with"),
    "number": _typed(NUMBER),
    "date": _typed(DATE),
    "boolean": {"eq": StrictBoolean, "ne": StrictBoolean, "exists": None, "not_exists": None},
}

# field -> (extra keys it requires, its ops). `attribute` ops come from ATTRIBUTE_OPS.
FIELDS: dict[str, tuple[tuple[str, ...], dict[str, Value]]] = {
    "email": (
        (),
        {
            "eq": EMAIL,
            "in": _list(EMAIL),
            "contains": EMAIL,
            "starts_with": EMAIL,
            "ends_with": EMAIL,
        },
    ),
    "email_domain": ((), {"eq": _domain, "in": _list(_domain)}),
    "attribute": (("key", "type"), {}),
    "topic": (
        ("topic",),
        {"eq": TOPIC_STATUS, "in": _list(TOPIC_STATUS), "exists": None, "not_exists": None},
    ),
    "locale": ((), {"eq": LOCALE, "ne": LOCALE, "in": _list(LOCALE)}),
    "form": ((), {"eq": REF, "in": _list(REF), "exists": None, "not_exists": None}),
    "status": (
        (),
        {"eq": SUBSCRIBER_STATUS, "ne": SUBSCRIBER_STATUS, "in": _list(SUBSCRIBER_STATUS)},
    ),
    "created_at": ((), DATE_COLUMN_OPS),
    "confirmed_at": ((), OPTIONAL_DATE_COLUMN_OPS),
    "last_open_at": ((), OPTIONAL_DATE_COLUMN_OPS),
    "last_click_at": ((), OPTIONAL_DATE_COLUMN_OPS),
    "open_count": ((), COUNT_OPS),
    "click_count": ((), COUNT_OPS),
    "bounce_count": ((), COUNT_OPS),
    "campaign": ((), {"opened": CAMPAIGN, "clicked": CAMPAIGN, "received": CAMPAIGN}),
    "recent_campaigns": ((), {"none_opened": RECENT, "none_clicked": RECENT}),
}
