"""The CSV audit export on PostgreSQL: `COPY (SELECT ...) TO STDOUT`, one keyset range of
`seq` at a time.

The SELECT renders most cells into ready CSV text (`audit_csv.row_parts`); topics, user agent
and evidence travel as stored and are rendered in Python once per distinct value (evidence
must be `json.dumps(sort_keys=True)` of the stored JSON, which SQL cannot reproduce cheaply
and exactly: json_each and a sort per row cost more than COPY itself). To keep the ready
text untouched, the COPY uses separators that user text does not hold (0x01 between fields,
0x02 as the quote); a row where PostgreSQL had to quote anyway (a newline in a user agent, or
those bytes in the data) is parsed with the csv module instead, which is exact but slower.

psycopg yields a COPY TO result record by record (one CopyData message per row): batches of
chunks are batches of whole rows.

Read-only; the caller's transaction is only read in.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from psycopg import pq
from sqlalchemy.orm import Session

from mailer.compliance import audit_csv

if TYPE_CHECKING:
    from mailer.compliance.audit_export import Filter

Cells = audit_csv.Rendered

RANGE = 50_000  # seq values per COPY statement: progress and stopping between ranges
BATCH = 2_000  # records rendered at once
WIDTH = 6  # fields per record: head, topics, mid, user agent, evidence, tail
FIELD, QUOTE = b"\x01", b"\x02"
CRLF = b"\r\n"
PARALLEL = "max_parallel_workers_per_gather"


# User text that needs care somewhere in the row: a cell starting like a formula, or a
# character that makes csv.writer quote. Tested once per row on all five columns together.
CAREFUL = (
    "concat_ws(E'\\x01', email, lawful_basis, locale, ip, actor) "
    "~ E'(^|\\x01)[=+@\\t\\r-]|[\",\\r\\n]'"
)


def statement(flt: Filter, iso_dates: bool = True) -> tuple[str, list[Any]]:
    """The COPY statement for one range (`seq` between the last two placeholders). The inner
    SELECT computes the per-row facts once (`OFFSET 0` keeps the planner from inlining them
    into each use); rows whose user text needs no care skip the per-cell checks."""
    stamp = audit_csv.POSTGRESQL_STAMP if iso_dates else audit_csv.POSTGRESQL_STAMP_ANY_STYLE
    careful = audit_csv.row_parts(audit_csv.postgresql_text, stamp)
    plain = audit_csv.row_parts(audit_csv.plain_text, stamp)
    head, mid, tail = (
        f"CASE WHEN careful THEN {c} ELSE {p} END" for c, p in zip(careful, plain, strict=True)
    )
    condition, values = audit_csv.where(flt, "postgresql")
    select = (
        f"SELECT {head}, topics::text, {mid}, nullif(user_agent, ''), evidence::text, {tail} "  # noqa: S608
        "FROM (SELECT *, (occurred_at AT TIME ZONE 'UTC')::text AS utc, "
        f"{CAREFUL} AS careful FROM consent_events "
        f"WHERE {condition} AND seq >= %s AND seq < %s ORDER BY seq OFFSET 0) AS e ORDER BY seq"
    )
    copy = f"COPY ({select}) TO STDOUT WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')"
    return copy, values


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
            "SELECT min(seq), max(seq), current_setting('DateStyle'), current_setting(%s) "
            "FROM consent_events",
            [PARALLEL],
        )
        low, high, style, parallel = cursor.fetchone()
        if low is None:
            return
        # The rendering SELECT looks costly to the planner, which then splits each range over
        # parallel workers that merge the rows back in order: more processes fighting for the
        # cores the reader needs, for no gain. Off for this transaction, restored after.
        cursor.execute("SELECT set_config(%s, '0', true)", [PARALLEL])
    try:
        yield from _ranges(connection, flt, low, high, style, step, after_range)
    finally:
        if connection.info.transaction_status == pq.TransactionStatus.INTRANS:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config(%s, %s, true)", [PARALLEL, parallel])


def _ranges(
    connection: Any,
    flt: Filter,
    low: int,
    high: int,
    style: str,
    step: int,
    after_range: Callable[[int], None] | None,
) -> Iterator[tuple[bytes, int]]:
    sql, values = statement(flt, iso_dates=style.upper().startswith("ISO"))
    topics = audit_csv.Rendered(_encoded(audit_csv.topics_cell))
    agents = audit_csv.Rendered(_encoded(audit_csv.agent_cell))
    evidence = audit_csv.Rendered(_encoded(audit_csv.evidence_cell))
    done = 0
    for start in range(low, high + 1, step):
        before = done
        with (
            connection.cursor() as cursor,
            cursor.copy(sql, [*values, start, start + step]) as copy,
        ):
            records = iter(copy)
            while batch := list(islice(records, BATCH)):
                yield _render(batch, topics, agents, evidence), len(batch)
                done += len(batch)
        evidence.trim()
        agents.trim()
        topics.trim()
        if after_range is not None and done > before:
            after_range(done)


def _render(batch: list[Any], topics: Cells, agents: Cells, evidence: Cells) -> bytes:
    """A batch of records as CSV rows. Records PostgreSQL did not quote are cut apart all
    at once (no Python per row): newline and 0x01 occur only as separators there."""
    blob = b"".join(batch)
    if QUOTE in blob:
        return b"".join(_render_one(f, topics, agents, evidence) for f in _parse(blob))
    fields = blob.replace(b"\n", FIELD).split(FIELD)
    fields.pop()  # what follows the last newline
    if len(fields) != WIDTH * len(batch):
        raise RuntimeError("COPY returned records of an unexpected shape")
    out = [CRLF] * (7 * len(batch))
    out[0::7] = fields[0::WIDTH]
    out[1::7] = map(topics.__getitem__, fields[1::WIDTH])
    out[2::7] = fields[2::WIDTH]
    out[3::7] = map(agents.__getitem__, fields[3::WIDTH])
    proofs = fields[4::WIDTH]
    evidence.prefill(proofs, audit_csv.evidence_cells_utf8)
    out[4::7] = map(evidence.__getitem__, proofs)
    out[5::7] = fields[5::WIDTH]
    return b"".join(out)


def _render_one(fields: list[bytes], topics: Cells, agents: Cells, evidence: Cells) -> bytes:
    head, topic, mid, agent, proof, tail = fields
    return head + topics[topic] + mid + agents[agent] + evidence[proof] + tail + CRLF


def _encoded(render: Callable[[str], str]) -> Callable[[bytes], bytes]:
    def bytes_in_bytes_out(value: bytes) -> bytes:
        return render(value.decode("utf-8")).encode("utf-8")

    return bytes_in_bytes_out


def _parse(blob: bytes) -> Iterator[list[bytes]]:
    """Records where PostgreSQL quoted a field (a newline, 0x01 or 0x02 in the data), parsed
    exactly by the csv module: slower, and rare."""
    text = io.StringIO(blob.decode("utf-8"), newline="")
    for row in csv.reader(text, delimiter="\x01", quotechar="\x02", strict=True):
        yield [field.encode("utf-8") for field in row]
