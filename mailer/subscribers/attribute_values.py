"""Attribute values typed by a person into one text box, and back.

The API's PATCH takes JSON, so its values arrive typed: text, numbers, true/false, lists of
those (dates as ISO 8601 text). A form field is always text; the person says which type
they mean, and `parse` turns the text into that value or says what is wrong with it. The
stored value is then checked by `profiles.merge_attributes`, as over the API. Pure functions.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

KINDS = (
    ("text", "Text"),
    ("number", "Number"),
    ("boolean", "True/false"),
    ("date", "Date (YYYY-MM-DD)"),
    ("list", "List (comma-separated)"),
)
_INTEGER = re.compile(r"^[+-]?\d{1,18}$")
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def parse(kind: str, text: str) -> Any:
    """The value `text` means as a `kind`. Raises `ValueError` with a message for people."""
    if kind == "text":
        return text
    stripped = text.strip()
    if kind == "number":
        if _INTEGER.match(stripped):
            return int(stripped)
        try:
            number = float(stripped)
        except ValueError:
            raise ValueError("not a number (use a dot for decimals: 4.5)") from None
        if not math.isfinite(number):
            raise ValueError("not a number (use a dot for decimals: 4.5)")
        return number
    if kind == "boolean":
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise ValueError("use true or false")
    if kind == "date":
        try:
            return date.fromisoformat(stripped).isoformat()
        except ValueError:
            raise ValueError("not a date: use YYYY-MM-DD, like 2026-05-14") from None
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    raise ValueError("choose a type")


def kind_of(value: Any) -> str:
    """The type a stored value shows as (dates are text that reads as a date)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        try:
            date.fromisoformat(value)
        except ValueError:
            return "text"
        return "date" if len(value) == 10 else "text"
    return "text"


def as_text(value: Any) -> str:
    """The value as the text box shows it (the inverse of `parse` for its `kind_of`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(as_text(v) for v in value)
    return str(value)
