"""The fast CSV audit export's cells: what Python renders, SQLite's SQL, and the filter.

The export writes the bytes `csv.DictWriter` wrote over ORM objects (QUOTE_MINIMAL, `\\r\\n`
rows, spreadsheet formulas neutralised), without building an object per row. Python renders
the cells that repeat a lot or that SQL cannot render exactly (topics, evidence JSON; on
SQLite the user agent too) once per distinct value, from small caches. On SQLite the
database renders the other cells into ready-made CSV text (`sqlite_lines`); a row it cannot
render (a timestamp stored in an unexpected shape) comes back as NULL and is rendered the
slow, original way. PostgreSQL's COPY writes its own CSV (`audit_copy`).

Read-only; nothing here commits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from json import decoder, encoder, scanner
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.compliance.audit_export import FIELDS, FORMULA_START, event_row
from mailer.consent.models import ConsentEvent

if TYPE_CHECKING:
    from mailer.compliance.audit_export import Filter

CACHE_LIMIT = 20_000  # distinct values kept per cached column; emptied when full
PAGE = 5_000  # rows fetched at a time from SQLite


def cell(value: str | None) -> str:
    """One user-text cell exactly as `csv.writer` wrote `_cell(value)`: QUOTE_MINIMAL quotes
    a cell holding a comma, a quote, CR or LF."""
    if value is None:
        return ""
    if value.startswith(FORMULA_START):
        value = "'" + value  # OWASP: shown as text, never run as a formula
    if "," in value or '"' in value or "\r" in value or "\n" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


# json.dumps(value, sort_keys=True, ensure_ascii=False) and json.loads(text), minus the
# per-call argument handling: the same C scanner and encoder the json module builds.
_scan = scanner.c_make_scanner(decoder.JSONDecoder())
_encode = encoder.c_make_encoder(
    None,
    encoder.JSONEncoder().default,
    encoder.encode_basestring,
    None,
    ": ",
    ", ",
    True,
    False,
    True,
)


def evidence_json(text: str) -> str:
    """The stored evidence as the export shows it: `json.dumps(sort_keys=True,
    ensure_ascii=False)` of the stored JSON."""
    if _scan is None or _encode is None:  # no C accelerator: the plain calls
        return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
    try:
        value, end = _scan(text, 0)
    except (StopIteration, ValueError):
        end = -1
    if end != len(text):  # surrounding whitespace or worse: let json.loads decide
        value = json.loads(text)
    return "".join(_encode(value, 0))


def evidence_cells(texts: list[str]) -> list[str]:
    """`evidence_cell` of many stored values: parsed as one JSON array and rendered with C
    loops (`map`), not a Python call per value; one value per stored text, in order."""
    cells = _evidence_batch("[" + ",".join(texts) + "]", len(texts))
    return [evidence_cell(t) for t in texts] if cells is None else cells.split("\x00")


def evidence_cells_utf8(joined: bytes, count: int) -> list[bytes] | None:
    """`evidence_cell` of `count` stored texts given comma-joined in UTF-8 (COPY's bytes),
    decoded and encoded once; None when they do not read as `count` JSON values (the caller
    then renders them one by one)."""
    cells = _evidence_batch("[" + joined.decode("utf-8") + "]", count)
    return None if cells is None else cells.encode("utf-8").split(b"\x00")


def _evidence_batch(array: str, count: int) -> str | None:
    """The CSV cells of the array's items, NUL-separated (rendered JSON never holds a raw NUL:
    json escapes control characters), or None when the one-call path does not apply."""
    if _encode is None:
        return None
    try:
        values = json.loads(array)
    except ValueError:  # a stored text that is not JSON: fail (or not) as one value does
        return None
    if len(values) != count:  # a stored text that was more than one value
        return None
    rendered = list(map("".join, map(_encode, values, repeat(0))))
    # A non-empty object starts with {" and always holds a quote: csv quotes it.
    body = "\x00".join(rendered).replace('"', '""')
    cells = ('"' + body.replace("\x00", '"\x00"') + '"').split("\x00")
    for i, text in enumerate(rendered):
        if not text.startswith('{"'):  # {}, or evidence that is not an object
            cells[i] = cell(text)
    return "\x00".join(cells)


def topics_cell(text: str) -> str:
    return cell(" ".join(json.loads(text)))


def agent_cell(value: str | None) -> str:
    return cell(value) + ","


def evidence_cell(text: str) -> str:
    return cell(evidence_json(text))


class Rendered(dict):
    """Rendered cells by stored value: each distinct value is rendered once. Bounded by the
    caller (`trim`), so memory stays flat on a ledger of unique values."""

    def __init__(self, render: Callable[[Any], Any]) -> None:
        super().__init__()
        self.render = render

    def __missing__(self, key: Any) -> Any:
        value = self[key] = self.render(key)
        return value

    def prefill(self, keys: Iterable[Any], render_many: Callable[[list[Any]], list[Any]]) -> None:
        """Render the keys not seen yet with one call of `render_many`."""
        missing = [key for key in set(keys) if key not in self]
        if missing:
            self.update(zip(missing, render_many(missing), strict=True))

    def trim(self) -> None:
        if len(self) > CACHE_LIMIT:
            self.clear()


# --- SQLite: the cells the database renders --------------------------------------------------


def sqlite_text(column: str) -> str:
    """`cell(column)` in SQLite: neutralised, quoted when needed, NULL as empty."""
    c = column
    neutral = f"iif(unicode({c}) IN (61, 43, 45, 64, 9, 13), '''' || {c}, {c})"
    special = f"instr({c}, ',') OR instr({c}, '\"') OR instr({c}, char(13)) OR instr({c}, char(10))"
    return (
        f"coalesce(iif({special}, '\"' || replace({neutral}, '\"', '\"\"') || '\"', {neutral}), '')"
    )


# `datetime.isoformat()` of the UTC time. SQLite holds SQLAlchemy's text form
# (`YYYY-MM-DD HH:MM:SS.ffffff`); any other shape gives NULL and the slow path.
SQLITE_STAMP = (
    "iif(occurred_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] "
    "[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]', "
    "replace(substr(occurred_at, 1, 19), ' ', 'T') "
    "|| iif(substr(occurred_at, 20) = '.000000', '', substr(occurred_at, 20)) || '+00:00', NULL)"
)


def row_parts(text: Callable[[str], str], stamp: str) -> tuple[str, str, str]:
    """SQL for the three runs of ready CSV text around the Python-rendered cells:
    head (seq .. email,) topics mid (,lawful_basis .. ip,) user_agent evidence tail
    (,actor,row_hash). `text` renders a user-text column, `stamp` is the timestamp's SQL.
    Hex digests, enum values and ids are written by our code and never need quoting."""
    number = "coalesce(CAST({} AS TEXT), '')"
    head = ["CAST(seq AS TEXT)", stamp, "type", "subject_hmac", text("email")]
    mid = [
        text("lawful_basis"),
        "source",
        number.format("form_id"),
        number.format("form_version_id"),
        "coalesce(consent_text_sha256, '')",
        text("locale"),
        text("ip"),
    ]
    tail = [text("actor"), "row_hash"]
    comma = " || ',' || "
    return (
        comma.join(head) + " || ','",
        "',' || " + comma.join(mid) + " || ','",
        "',' || " + comma.join(tail),
    )


def where(flt: Filter, dialect: str) -> tuple[str, list[Any]]:
    """The filter as SQL with driver placeholders (SQLite `?`, psycopg `%s`), and its
    values bound as the ORM binds them."""
    mark = "?" if dialect == "sqlite" else "%s"
    clauses: list[str] = []
    values: list[Any] = []
    stamp = _stamp_binder(dialect)
    if flt.since:
        clauses.append(f"occurred_at >= {mark}")
        values.append(stamp(flt.since))
    if flt.until:
        clauses.append(f"occurred_at < {mark}")
        values.append(stamp(flt.until))
    if flt.types:
        clauses.append(f"type IN ({', '.join([mark] * len(flt.types))})")
        values.extend(t.value for t in flt.types)
    if flt.form_id is not None:
        clauses.append(f"form_id = {mark}")
        values.append(flt.form_id)
    if flt.topic is not None:  # a whole element of the list, as `topic in event.topics`
        if dialect == "sqlite":
            clauses.append("EXISTS (SELECT 1 FROM json_each(topics) WHERE value = ?)")
        else:
            clauses.append(
                "EXISTS (SELECT 1 FROM json_array_elements_text(topics) AS t(v) WHERE v = %s)"
            )
        values.append(flt.topic)
    return " AND ".join(clauses) or "TRUE", values


def _stamp_binder(dialect: str) -> Callable[[Any], Any]:
    if dialect != "sqlite":
        return lambda value: value
    from sqlalchemy.dialects import sqlite

    process = ConsentEvent.__table__.c.occurred_at.type.bind_processor(sqlite.dialect())
    return process or (lambda value: value)


# --- SQLite: one statement, read in pages ----------------------------------------------------


def sqlite_lines(session: Session, flt: Filter, page: int = PAGE) -> Iterator[list[str]]:
    """The CSV rows (without line ends) page by page, in chain order."""
    head, mid, tail = row_parts(sqlite_text, SQLITE_STAMP)
    condition, values = where(flt, "sqlite")
    statement = (
        f"SELECT seq, {head}, topics, {mid}, nullif(user_agent, ''), evidence, {tail} "  # noqa: S608
        f"FROM consent_events WHERE {condition} ORDER BY seq"
    )
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        cursor.execute(statement, values)
        topics, agents, evidence = (
            Rendered(topics_cell),
            Rendered(agent_cell),
            Rendered(evidence_cell),
        )
        while rows := cursor.fetchmany(page):
            evidence.prefill([row[5] for row in rows], evidence_cells)
            try:
                lines = [
                    h + topics[t] + m + agents[u] + evidence[e] + tl
                    for _, h, t, m, u, e, tl in rows
                ]
            except TypeError:  # a NULL head: a row SQL could not render
                lines = [
                    slow_line(session, seq)
                    if h is None
                    else h + topics[t] + m + agents[u] + evidence[e] + tl
                    for seq, h, t, m, u, e, tl in rows
                ]
            yield lines
            evidence.trim()
            agents.trim()
            topics.trim()
    finally:
        cursor.close()


def slow_line(session: Session, seq: int) -> str:
    """One row the original way: the event through the ORM types, every cell in Python."""
    event = session.execute(select(*_COLUMNS).where(ConsentEvent.seq == seq)).one()
    row = event_row(event)
    return ",".join(
        cell(v) if isinstance(v, str) else "" if v is None else str(v)
        for v in (row[name] for name in FIELDS)
    )


_COLUMNS = [c for c in ConsentEvent.__table__.c]
