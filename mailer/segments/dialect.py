"""The few SQL expressions SQLite and PostgreSQL spell differently, as SQLAlchemy constructs.

A segment compiles to one dialect-neutral `Select`; these elements render per dialect when it
runs. Values are always bound parameters; an attribute key reaches SQL as a bound JSON path
(SQLite) or a bound key (PostgreSQL), never as SQL text.

Every boolean element here is two-valued (never NULL), so `NOT` in a rule tree means what it
says: SQL's NULL would make `NOT (x = 1)` false for a missing `x`, while the Python evaluator
says true.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Float, Numeric, String, TypeDecorator, func, literal, type_coerce
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, expression
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

# SQLite's json_type() names -> the JSON kinds a rule's `type` accepts.
_SQLITE_KINDS = {
    "string": ("text",),
    "number": ("integer", "real"),
    "true": ("true",),
    "false": ("false",),
}
_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
_DATE_REGEX = "^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ]|$)"


class NumberOperand(TypeDecorator):
    """A number compared with a JSON number: exact `numeric` on PostgreSQL (a float parameter
    would turn the comparison into float8, which overflows on 1e400), as is on SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(asdecimal=True))
        return dialect.type_descriptor(Float())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


# Every part that varies between statements is a traversed element (or string), so that it
# is in SQLAlchemy's cache key and its bound values are re-extracted on a cache hit.
_CLAUSE = InternalTraversal.dp_clauseelement
_STRING = InternalTraversal.dp_string


class _Json(ColumnElement[Any]):
    _traverse_internals = [("document", _CLAUSE), ("path", _CLAUSE), ("key", _CLAUSE)]
    inherit_cache = True

    def __init__(self, document: ColumnElement[Any], key: str) -> None:
        self.document = document
        self.path = literal('$."' + key + '"', String)  # SQLite (keys never hold `"` or `\`)
        self.key = literal(key, String)  # PostgreSQL


class JsonIs(_Json):
    """The value at `key` is of `kind` (string, number, true, false); false when missing."""

    _traverse_internals = [*_Json._traverse_internals, ("kind", _STRING)]
    type = Boolean()
    _is_implicitly_boolean = True  # a predicate: SQLite must not get `(...) = 1`
    inherit_cache = True

    def __init__(self, document: ColumnElement[Any], key: str, kind: str) -> None:
        super().__init__(document, key)
        self.kind = kind


class JsonText(_Json):
    """The value at `key` as text (a string's characters, unescaped)."""

    type = String()
    inherit_cache = True


class JsonNumber(_Json):
    """The value at `key` as a number; only to be read where `JsonIs(..., "number")` holds."""

    type = NumberOperand()
    inherit_cache = True


@compiles(JsonIs, "sqlite")
def _json_is_sqlite(element: JsonIs, compiler: SQLCompiler, **kw: Any) -> str:
    kind = func.coalesce(func.json_type(element.document, element.path), "")
    return compiler.process(kind.in_(_SQLITE_KINDS[element.kind]), **kw)


@compiles(JsonIs, "postgresql")
def _json_is_pg(element: JsonIs, compiler: SQLCompiler, **kw: Any) -> str:
    value = expression.Grouping(element.document.op("->")(element.key))
    if element.kind in ("true", "false"):
        # The raw JSON text of the value: `true`, never `"true"` (that is a string).
        raw = func.coalesce(expression.cast(value, String), "")
        return compiler.process(raw == element.kind, **kw)
    kind = func.coalesce(func.json_typeof(value), "")
    return compiler.process(kind == element.kind, **kw)


@compiles(JsonText, "sqlite")
@compiles(JsonNumber, "sqlite")
def _json_value_sqlite(element: _Json, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(func.json_extract(element.document, element.path), **kw)


@compiles(JsonText, "postgresql")
def _json_text_pg(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(expression.Grouping(element.document.op("->>")(element.key)), **kw)


@compiles(JsonNumber, "postgresql")
def _json_number_pg(element: JsonNumber, compiler: SQLCompiler, **kw: Any) -> str:
    text = expression.Grouping(element.document.op("->>")(element.key))
    return compiler.process(expression.cast(text, Numeric()), **kw)


class _Unary(ColumnElement[Any]):
    _traverse_internals = [("inner", _CLAUSE)]
    inherit_cache = True

    def __init__(self, inner: ColumnElement[Any]) -> None:
        self.inner = inner


class ByCodePoint(_Unary):
    """Ordered by code point (`COLLATE "C"` on PostgreSQL; SQLite's default already is)."""

    type = String()
    inherit_cache = True


class AsciiLower(_Unary):
    """A-Z lowered, every other character kept: SQLite's lower(), and PostgreSQL's under
    `COLLATE "C"` (its default lower() would also fold É, which SQLite cannot match)."""

    type = String()
    inherit_cache = True


class IsIsoDate(_Unary):
    """Starts `YYYY-MM-DD`, alone or followed by `T` or a space. Never NULL for non-NULL text."""

    type = Boolean()
    _is_implicitly_boolean = True
    inherit_cache = True


@compiles(ByCodePoint, "sqlite")
def _by_code_point_sqlite(element: ByCodePoint, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.inner, **kw)


@compiles(ByCodePoint, "postgresql")
def _by_code_point_pg(element: ByCodePoint, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.inner, **kw)}) COLLATE "C"'


@compiles(AsciiLower, "sqlite")
def _ascii_lower_sqlite(element: AsciiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(func.lower(element.inner), **kw)


@compiles(AsciiLower, "postgresql")
def _ascii_lower_pg(element: AsciiLower, compiler: SQLCompiler, **kw: Any) -> str:
    return f'lower(({compiler.process(element.inner, **kw)}) COLLATE "C")'


@compiles(IsIsoDate, "sqlite")
def _is_iso_date_sqlite(element: IsIsoDate, compiler: SQLCompiler, **kw: Any) -> str:
    text = element.inner
    head = func.substr(text, 1, 10).op("GLOB")(literal(_DATE_GLOB, String))
    tail = expression.or_(
        func.length(text) == 10, func.substr(text, 11, 1).in_([literal("T"), literal(" ")])
    )
    return compiler.process(expression.and_(head, tail), **kw)


@compiles(IsIsoDate, "postgresql")
def _is_iso_date_pg(element: IsIsoDate, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.inner.op("~")(literal(_DATE_REGEX, String)), **kw)


class _Match(ColumnElement[Any]):
    """`haystack` contains / starts with / ends with `needle` (exact characters)."""

    _traverse_internals = [("haystack", _CLAUSE), ("needle", _CLAUSE), ("length", _CLAUSE)]
    type = Boolean()
    _is_implicitly_boolean = True
    inherit_cache = True

    def __init__(self, haystack: ColumnElement[Any], needle: str) -> None:
        self.haystack = haystack
        self.needle = literal(needle, String)
        self.length = literal(len(needle))


class Contains(_Match):
    inherit_cache = True


class EndsWith(_Match):
    inherit_cache = True


@compiles(Contains, "sqlite")
def _contains_sqlite(element: Contains, compiler: SQLCompiler, **kw: Any) -> str:
    found = func.instr(element.haystack, element.needle) > 0
    return compiler.process(found, **kw)


@compiles(Contains, "postgresql")
def _contains_pg(element: Contains, compiler: SQLCompiler, **kw: Any) -> str:
    found = func.strpos(element.haystack, element.needle) > 0
    return compiler.process(found, **kw)


@compiles(EndsWith, "sqlite")
def _ends_with_sqlite(element: EndsWith, compiler: SQLCompiler, **kw: Any) -> str:
    tail = func.substr(element.haystack, -element.length)
    return compiler.process(tail == element.needle, **kw)


@compiles(EndsWith, "postgresql")
def _ends_with_pg(element: EndsWith, compiler: SQLCompiler, **kw: Any) -> str:
    tail = func.right(element.haystack, element.length)
    return compiler.process(tail == element.needle, **kw)


def starts_with(haystack: ColumnElement[Any], needle: str) -> ColumnElement[bool]:
    """Same spelling on both: substr() counts characters on each."""
    return func.substr(haystack, 1, len(needle)) == literal(needle, String)


def number(value: int | float) -> ColumnElement[Any]:
    return type_coerce(value, NumberOperand())
