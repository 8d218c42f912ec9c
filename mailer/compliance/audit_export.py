"""The consent audit export: every ledger event matching a filter, streamed as CSV or JSON Lines.

Columns are documented and stable (`COLUMNS`); rows come in chain order, read in keyset pages,
so memory stays flat however large the ledger is. CSV cells that a spreadsheet would run as a
formula are neutralised.
"""

from __future__ import annotations

import csv
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
    query = select(ConsentEvent).order_by(ConsentEvent.seq).limit(batch)
    if flt.since:
        query = query.where(ConsentEvent.occurred_at >= flt.since)
    if flt.until:
        query = query.where(ConsentEvent.occurred_at < flt.until)
    if flt.types:
        query = query.where(ConsentEvent.type.in_(flt.types))
    if flt.form_id is not None:
        query = query.where(ConsentEvent.form_id == flt.form_id)
    last = 0
    while True:
        page = session.scalars(query.where(ConsentEvent.seq > last)).all()
        if not page:
            return
        for event in page:
            if flt.topic is None or flt.topic in event.topics:
                yield _row(event)
        last = page[-1].seq
        session.expunge_all()


def _row(event: ConsentEvent) -> dict[str, Any]:
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


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value  # OWASP: shown as text, never run as a formula
    return "" if value is None else value


def write(
    session: Session,
    flt: Filter,
    out: IO[str],
    fmt: str,
    progress: Callable[[int], None] | None = None,
    every: int = 1000,
) -> int:
    """Write the export to `out`; returns the number of rows. `progress(rows so far)` is
    called every `every` rows (background exports show a progress bar with it); it may raise
    to stop the export."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
    elif fmt != "jsonl":
        raise ValueError("format must be csv or jsonl")
    for row in rows(session, flt):
        if fmt == "csv":
            writer.writerow({k: _cell(v) for k, v in row.items()})
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
        if progress is not None and count % every == 0:
            progress(count)
    return count
