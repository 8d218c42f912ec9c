"""The CSV audit export on PostgreSQL: `COPY (SELECT ...) TO STDOUT WITH (FORMAT csv)`, one
keyset range of `seq` at a time, turned into the export's bytes with a few byte operations
per batch of records instead of Python per row or per cell.

PostgreSQL's CSV quoting is `csv.writer`'s QUOTE_MINIMAL (a cell is quoted when it holds a
comma, a quote, CR or LF; quotes are doubled), so the server writes and quotes the cells
itself; the SELECT only adds what the original export did on top of the stored values:
- Text cells starting like a spreadsheet formula get a leading quote, and empty strings
  become NULL (COPY writes `""` for those; the original wrote nothing). Bytewise
  comparisons settle almost every value; only the rest is looked at closely.
- The timestamp is `to_char` with six fraction digits; whole seconds (where `isoformat`
  writes none) are fixed on the batch by one anchored regular expression.
- Topics and evidence are rendered in Python, once per distinct value (`audit_csv`):
  evidence must be `json.dumps(sort_keys=True)` of the stored JSON, which SQL cannot
  reproduce cheaply and exactly. Each travels between two marker fields (0x01, which stored
  JSON cannot hold), so splitting a batch on 0x01 puts them, commas around, at fixed places.
A batch where a newline sits inside a cell, or user text holds 0x01, is parsed with the csv
module and rendered cell by cell instead: exact for any content, and slower.

Records are read straight from libpq (`PGconn.get_copy_data`; psycopg documents `pgconn` for
such uses) into one buffer per batch: psycopg's per-record iteration costs the client more
CPU than the server spends writing the record. When nothing is buffered, psycopg's own
`Copy.read` waits for the socket, so the wait stays interruptible.

Read-only; the caller's transaction is only read in, and its settings are left as found.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq
from sqlalchemy.orm import Session

from mailer.compliance import audit_csv

if TYPE_CHECKING:
    from mailer.compliance.audit_export import Filter

RANGE = 50_000  # seq values per COPY statement: progress and stopping between ranges
BATCH = 1_000  # records rendered at once (about half a megabyte)
PARALLEL = "max_parallel_workers_per_gather"

MARK = "E'\\x01'"
PARTS = 4  # marker fields per record, so pieces per record after splitting on 0x01
# UTC by a zero offset: the zone name 'UTC' would be looked up again for every row.
STAMP = (
    """to_char(occurred_at AT TIME ZONE INTERVAL '00:00', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
)
WHOLE = b".000000+00:00,"
WHOLE_STAMP = re.compile(rb"^(\d+,\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.000000(\+00:00,)", re.M)
INTEGERS = (0, 8, 9)  # seq, form_id, form_version_id: never neutralised, as the original
TOPICS, EVIDENCE = 5, 14  # their places among the 17 columns


def _text(column: str) -> str:
    """`audit_csv.cell(column)` but for the quoting, which COPY does. A first byte from 'A'
    up, or from '.' to '<' (digits, ':'), starts no formula (= + - @ TAB CR), and bytewise
    comparisons are the cheapest test PostgreSQL has; the rest is checked exactly."""
    c = column
    plain = f"{c} >= 'A' COLLATE \"C\" OR ({c} >= '.' COLLATE \"C\" AND {c} < '=' COLLATE \"C\")"
    formula = f"ascii({c}) IN (9, 13, 43, 45, 61, 64)"
    return f"CASE WHEN {plain} THEN {c} WHEN {formula} THEN '''' || {c} ELSE nullif({c}, '') END"


_COLUMNS = (
    "seq",
    STAMP,
    "type",  # enum values: the original fails on anything else, so nothing to neutralise
    _text("subject_hmac"),
    _text("email"),
    MARK,
    "topics",
    MARK,
    _text("lawful_basis"),
    "source",
    "form_id",
    "form_version_id",
    _text("consent_text_sha256"),
    _text("locale"),
    _text("ip"),
    _text("user_agent"),
    MARK,
    "evidence",
    MARK,
    _text("actor"),
    _text("row_hash"),
)


def statement(flt: Filter) -> tuple[str, list[Any]]:
    """The COPY statement for one range (`seq` between the last two placeholders)."""
    condition, values = audit_csv.where(flt, "postgresql")
    select = (
        f"SELECT {', '.join(_COLUMNS)} FROM consent_events "  # noqa: S608 (our own SQL)
        f"WHERE {condition} AND seq >= %s AND seq < %s ORDER BY seq"
    )
    return f"COPY ({select}) TO STDOUT WITH (FORMAT csv)", values


def blocks(
    session: Session,
    flt: Filter,
    step: int = RANGE,
    after_range: Callable[[int], None] | None = None,
) -> Iterator[tuple[bytes, int]]:
    """(CSV bytes, rows in them) in chain order, without the header. `after_range(rows so
    far)` runs between ranges that held rows, while no COPY is in progress."""
    connection = session.connection().connection.driver_connection
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(seq), max(seq), current_setting(%s) FROM consent_events", [PARALLEL]
        )
        low, high, parallel = cursor.fetchone()
        if low is None:
            return
        # Parallel workers would merge each range back in order: more processes fighting
        # for the cores the reader needs, for no gain. Off for this transaction, restored
        # after.
        cursor.execute("SELECT set_config(%s, '0', true)", [PARALLEL])
    try:
        yield from _ranges(connection, flt, low, high, step, after_range)
    finally:
        if connection.info.transaction_status == pq.TransactionStatus.INTRANS:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config(%s, %s, true)", [PARALLEL, parallel])


def _ranges(
    connection: psycopg.Connection,
    flt: Filter,
    low: int,
    high: int,
    step: int,
    after_range: Callable[[int], None] | None,
) -> Iterator[tuple[bytes, int]]:
    sql, values = statement(flt)
    render = Renderer()
    done = 0
    for start in range(low, high + 1, step):
        before = done
        with (
            connection.cursor() as cursor,
            cursor.copy(sql, [*values, start, start + step]) as copy,
        ):
            for blob, count in records(connection, copy):
                yield render(blob, count), count
                done += count
        render.trim()
        if after_range is not None and done > before:
            after_range(done)


def records(connection: psycopg.Connection, copy: psycopg.Copy) -> Iterator[tuple[bytes, int]]:
    """The running COPY's records, `BATCH` at a time, as (bytes, how many records)."""
    read = connection.pgconn.get_copy_data
    buffer = bytearray()
    count = 0
    while True:
        size, record = read(1)  # 1: answer 0 rather than wait
        if size == 0:  # nothing buffered: psycopg waits for the socket, then reads one
            record = copy.read()
            if not record:  # the end, seen and finished by psycopg
                break
        elif size < 0:  # the end was already buffered: finish it as psycopg would
            _finish(connection)
            break
        buffer += record
        count += 1
        if count == BATCH:
            yield bytes(buffer), count
            buffer.clear()
            count = 0
    if count:
        yield bytes(buffer), count


def _finish(connection: psycopg.Connection) -> None:
    """Collect the COPY's closing results, all of them so that the connection is idle again;
    an error the server sent instead of the last rows is raised."""
    pgconn = connection.pgconn
    error = None
    while (result := pgconn.get_result()) is not None:
        if result.status != pq.ExecStatus.COMMAND_OK and error is None:
            error = psycopg.errors.error_from_result(result, encoding=connection.info.encoding)
    if error is not None:
        raise error


class Renderer:
    """Turns batches of COPY records into the export's CSV rows. Keeps the rendered topics
    and evidence cells by the CSV field PostgreSQL wrote for them; `trim` bounds them."""

    def __init__(self) -> None:
        self.topics = audit_csv.Rendered(_topics_cell)
        self.evidence = audit_csv.Rendered(_evidence_cell)

    def __call__(self, blob: bytes, count: int) -> bytes:
        lines = blob.replace(b"\n", b"\r\n")
        if len(lines) - len(blob) != count:
            return _exact(blob)  # a newline inside a cell
        if WHOLE in blob:  # whole seconds; every newline ends a record, so ^ starts one
            lines = WHOLE_STAMP.sub(rb"\1\2", blob).replace(b"\n", b"\r\n")
        # Pieces: `head,` `,topics,` `,middle,` `,evidence,` `,tail CRLF next head,` ...
        # The commas around topics and evidence are the marker fields' own: the rendered
        # cells take the whole piece's place.
        parts = lines.split(b"\x01")
        if len(parts) != PARTS * count + 1:
            return _exact(blob)  # user text holding 0x01
        parts[1::PARTS] = map(self.topics.__getitem__, parts[1::PARTS])
        proofs = parts[3::PARTS]
        self.evidence.prefill(proofs, _evidence_cells)
        parts[3::PARTS] = map(self.evidence.__getitem__, proofs)
        return b"".join(parts)

    def trim(self) -> None:
        self.topics.trim()
        self.evidence.trim()


def _exact(blob: bytes) -> bytes:
    """Records parsed with the csv module, every cell rendered as the original did (one the
    SELECT neutralised starts with a quote and stays as it is): exact, and slower."""
    lines = []
    for row in csv.reader(io.StringIO(blob.decode("utf-8"), newline=""), strict=True):
        del row[18], row[16], row[7], row[5]  # the marker fields
        cells = [audit_csv.cell(value) for value in row]
        for i in INTEGERS:
            cells[i] = row[i]
        if row[1].endswith(".000000+00:00"):
            cells[1] = row[1][: -len(".000000+00:00")] + "+00:00"
        cells[TOPICS] = audit_csv.topics_cell(row[TOPICS])
        cells[EVIDENCE] = audit_csv.evidence_cell(row[EVIDENCE])
        lines.append(",".join(cells) + "\r\n")
    return "".join(lines).encode("utf-8")


def _stored(piece: bytes) -> bytes:
    """The value in a piece `,field,` as PostgreSQL wrote the field: a quoted field holds
    every quote doubled, an unquoted one holds none."""
    return piece[2:-2].replace(b'""', b'"') if piece[1:2] == b'"' else piece[1:-1]


def _topics_cell(piece: bytes) -> bytes:
    return audit_csv.topics_cell(_stored(piece).decode("utf-8")).encode("utf-8")


def _evidence_cell(piece: bytes) -> bytes:
    return audit_csv.evidence_cell(_stored(piece).decode("utf-8")).encode("utf-8")


def _evidence_cells(pieces: list[bytes]) -> list[bytes]:
    """`_evidence_cell` of many pieces with one JSON parse. Unquoted all at once: without
    their outer quotes, every `""` left is an escaped quote, and the commas joining the
    fields cannot make a new one."""
    joined = b",".join([p[2:-2] if p[1:2] == b'"' else p[1:-1] for p in pieces])
    cells = audit_csv.evidence_cells_utf8(joined.replace(b'""', b'"'), len(pieces))
    return [_evidence_cell(p) for p in pieces] if cells is None else cells
