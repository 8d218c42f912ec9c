"""The consent audit export: every ledger event matching a filter, streamed as CSV or JSON Lines.

Columns are documented and stable (`COLUMNS`); rows come in chain order, read in pages or
keyset ranges, so memory stays flat however large the ledger is. CSV cells that a spreadsheet
would run as a formula are neutralised.

The output is the one `csv.DictWriter` wrote over ORM objects (`event_row`, `_cell` rules):
byte for byte, test-pinned. CSV is rendered mostly in SQL (`audit_csv`): on PostgreSQL it
streams from `COPY ... TO STDOUT` (`audit_copy`), on SQLite from one paged SELECT; JSON Lines
go through `rows` (plain column tuples, no ORM objects).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.consent.models import ConsentEvent, ConsentEventType

# Name, meaning. Append new columns at the end; never rename or reorder.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", "position in the hash chain, from 1"),
    ("occurred_at", "UTC, ISO 8601"),
    ("type", "requested | confirmed | imported | withdrawn | erased"),
    ("subject_hmac", "keyed HMAC of the address: the same person across rows, erased or not"),
    ("email", "the address; empty once erased"),
    ("topics", "topic slugs, space-separated"),
    ("lawful_basis", "consent, or legal_claims for erasure records"),
    ("source", "form | preferences | unsubscribe | api | import | admin | system"),
    ("form_id", "the form the consent was given on"),
    ("form_version_id", "the version of its consent text"),
    ("consent_text_sha256", "SHA-256 of the exact consent text shown"),
    ("locale", "language of the page or email"),
    ("ip", "as recorded (possibly truncated); empty once erased"),
    ("user_agent", "empty once erased"),
    ("evidence", "JSON: request and message ids, channel, origin, statement shown"),
    ("actor", "staff member for admin actions"),
    ("row_hash", "SHA-256 of this row's content and the previous row's hash"),
)
FIELDS = [name for name, _ in COLUMNS]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Filter:
    since: datetime | None = None
    until: datetime | None = None
    types: tuple[ConsentEventType, ...] = ()
    topic: str | None = None
    form_id: int | None = None


def rows(session: Session, flt: Filter, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Each matching event as a dict of `FIELDS` (values as JSON Lines shows them), in chain
    order, read in keyset pages of plain column tuples (no ORM objects). Read-only."""
    query = select(*_TABLE.c).order_by(_TABLE.c.seq).limit(batch)
    if flt.since:
        query = query.where(_TABLE.c.occurred_at >= flt.since)
    if flt.until:
        query = query.where(_TABLE.c.occurred_at < flt.until)
    if flt.types:
        query = query.where(_TABLE.c.type.in_(flt.types))
    if flt.form_id is not None:
        query = query.where(_TABLE.c.form_id == flt.form_id)
    last = 0
    while True:
        page = session.execute(query.where(_TABLE.c.seq > last)).all()
        if not page:
            return
        for event in page:
            if flt.topic is None or flt.topic in event.topics:
                yield event_row(event)
        last = page[-1].seq


def event_row(event: Any) -> dict[str, Any]:
    """One event (an ORM object or a row of its columns) as the export's dict."""
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(),
        "type": event.type.value,
        "subject_hmac": event.subject_hmac,
        "email": event.email,
        "topics": " ".join(event.topics),
        "lawful_basis": event.lawful_basis,
        "source": event.source.value,
        "form_id": event.form_id,
        "form_version_id": event.form_version_id,
        "consent_text_sha256": event.consent_text_sha256,
        "locale": event.locale,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "evidence": json.dumps(event.evidence, sort_keys=True, ensure_ascii=False),
        "actor": event.actor,
        "row_hash": event.row_hash,
    }


def write(
    session: Session,
    flt: Filter,
    out: IO[str],
    fmt: str,
    progress: Callable[[int], None] | None = None,
    every: int = 1000,
) -> int:
    """Write the export to the text stream `out` (open it with `newline=""`: CSV rows end in
    CR LF); returns the number of rows. `progress(rows so far)` is called at least every
    `every` rows, between pages (background exports show a progress bar with it); it may
    raise to stop the export. Read-only; safe to rerun."""

    def emit(block: str | bytes) -> None:
        out.write(block if isinstance(block, str) else block.decode("utf-8"))

    return _export(session, flt, fmt, emit, progress, every)


def write_bytes(
    session: Session,
    flt: Filter,
    out: IO[bytes],
    fmt: str,
    progress: Callable[[int], None] | None = None,
    every: int = 1000,
) -> int:
    """`write` into a binary stream, UTF-8: the same bytes, without a text layer (files and
    HTTP bodies are bytes; on PostgreSQL the rows arrive as bytes)."""

    def emit(block: str | bytes) -> None:
        out.write(block.encode("utf-8") if isinstance(block, str) else block)

    return _export(session, flt, fmt, emit, progress, every)


def _export(
    session: Session,
    flt: Filter,
    fmt: str,
    emit: Callable[[str | bytes], None],
    progress: Callable[[int], None] | None,
    every: int,
) -> int:
    if fmt == "jsonl":
        return _jsonl(session, flt, emit, progress, every)
    if fmt != "csv":
        raise ValueError("format must be csv or jsonl")
    # Imported here: both build on this module's columns and filter.
    from mailer.compliance import audit_csv

    emit(",".join(FIELDS) + "\r\n")
    dialect = session.get_bind().dialect.name
    count = 0
    if dialect == "postgresql":
        from mailer.compliance import audit_copy

        step = min(every, audit_copy.RANGE) if progress is not None else audit_copy.RANGE
        for block, rows_in_block in audit_copy.blocks(session, flt, step, progress):
            emit(block)
            count += rows_in_block
        return count
    if dialect != "sqlite":
        raise ValueError(f"no audit export for {dialect}")
    page = min(every, audit_csv.PAGE) if progress is not None else audit_csv.PAGE
    for lines in audit_csv.sqlite_lines(session, flt, page):
        emit("\r\n".join(lines) + "\r\n")
        count += len(lines)
        if progress is not None:
            progress(count)
    return count


def _jsonl(
    session: Session,
    flt: Filter,
    emit: Callable[[str | bytes], None],
    progress: Callable[[int], None] | None,
    every: int,
) -> int:
    count = 0
    lines: list[str] = []
    # What json.dumps(row, ensure_ascii=False) runs, built once.
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    for row in rows(session, flt):
        lines.append(dumps(row))
        count += 1
        if progress is not None and count % every == 0:
            emit("\n".join(lines) + "\n")
            lines.clear()
            progress(count)
        elif len(lines) >= 1000:
            emit("\n".join(lines) + "\n")
            lines.clear()
    if lines:
        emit("\n".join(lines) + "\n")
    return count


_TABLE = ConsentEvent.__table__
