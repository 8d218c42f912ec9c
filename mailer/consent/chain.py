"""The hash chain over consent events: append under a lock, verify by walking it.

Each row stores SHA-256 over the canonical JSON of its content plus the previous row's hash.
Personal data enters the chain only as keyed HMACs (`subject_hmac`, `ip_hmac`,
`user_agent_hmac`), so erasure can blank the clear values without breaking a single link.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.consent.models import ConsentEvent, LedgerAnchor, LedgerHead
from mailer.database import utcnow
from mailer.pseudonyms import keyed

GENESIS = "0" * 64


def content(event: ConsentEvent) -> dict[str, Any]:
    """What the hash covers. Adding a field here is a new chain version: never do it silently."""
    return {
        "v": 1,
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(),
        "type": event.type.value,
        "subscriber_id": event.subscriber_id,
        "subject_hmac": event.subject_hmac,
        "topics": list(event.topics),
        "lawful_basis": event.lawful_basis,
        "form_id": event.form_id,
        "form_version_id": event.form_version_id,
        "consent_text_sha256": event.consent_text_sha256,
        "locale": event.locale,
        "source": event.source.value,
        "ip_hmac": event.ip_hmac,
        "user_agent_hmac": event.user_agent_hmac,
        "evidence": event.evidence,
        "actor": event.actor,
        "prev_hash": event.prev_hash,
    }


def row_hash(event: ConsentEvent) -> str:
    canonical = json.dumps(
        content(event), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def append(session: Session, event: ConsentEvent) -> ConsentEvent:
    """Chain `event` onto the ledger and flush it; the caller's transaction commits.

    The head row is locked by an UPDATE before it is read (row lock on PostgreSQL, the write
    lock on SQLite), so concurrent appends queue up instead of forking the chain.
    """
    session.execute(
        update(LedgerHead)
        .where(LedgerHead.id == 1)
        .values(seq=LedgerHead.seq + 1)
        .execution_options(synchronize_session=False)
    )
    head = session.execute(select(LedgerHead.seq, LedgerHead.hash).where(LedgerHead.id == 1)).one()
    event.seq = head.seq
    event.prev_hash = head.hash
    event.occurred_at = event.occurred_at or utcnow()
    # Set by the caller when the clear values are not kept (the erasure event).
    event.subject_hmac = event.subject_hmac or keyed(session, event.email)
    event.ip_hmac = event.ip_hmac or keyed(session, event.ip)
    event.user_agent_hmac = event.user_agent_hmac or keyed(session, event.user_agent)
    event.row_hash = row_hash(event)
    session.add(event)
    session.execute(
        update(LedgerHead)
        .where(LedgerHead.id == 1)
        .values(hash=event.row_hash)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return event


def append_many(session: Session, events: list[ConsentEvent]) -> list[ConsentEvent]:
    """Chain `events` in order under one head lock: two statements on the head for the whole
    batch instead of per event (imports). Flushes; the caller's transaction commits."""
    if not events:
        return events
    session.execute(
        update(LedgerHead)
        .where(LedgerHead.id == 1)
        .values(seq=LedgerHead.seq + len(events))
        .execution_options(synchronize_session=False)
    )
    head = session.execute(select(LedgerHead.seq, LedgerHead.hash).where(LedgerHead.id == 1)).one()
    prev_hash = head.hash
    # The head already counts the whole batch; the first event takes the first new number.
    first = head.seq - len(events) + 1
    for offset, event in enumerate(events):
        event.seq = first + offset
        event.prev_hash = prev_hash
        event.occurred_at = event.occurred_at or utcnow()
        event.subject_hmac = event.subject_hmac or keyed(session, event.email)
        event.ip_hmac = event.ip_hmac or keyed(session, event.ip)
        event.user_agent_hmac = event.user_agent_hmac or keyed(session, event.user_agent)
        event.row_hash = row_hash(event)
        prev_hash = event.row_hash
    # The head's hash changes before the rows exist: callers' transaction makes both visible at
    # once, and on failure neither.
    session.execute(
        update(LedgerHead)
        .where(LedgerHead.id == 1)
        .values(hash=prev_hash)
        .execution_options(synchronize_session=False)
    )
    session.add_all(events)
    session.flush()
    return events


@dataclass(frozen=True)
class Problem:
    seq: int
    event_id: int | None
    kind: str  # altered | missing | reordered | head | anchor
    detail: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" + (f" (event id {self.event_id})" if self.event_id else "")
        return f"{self.kind} at {where}: {self.detail}"


@dataclass
class Report:
    checked: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problem: Problem | None = None
    anchors_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


def _rows(session: Session, batch: int) -> Iterator[ConsentEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.seq > last)
            .order_by(ConsentEvent.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify(session: Session, batch: int = 2000) -> Report:
    """Walk the chain in order and stop at the first broken, missing or reordered row.

    Reads in batches (memory stays flat on millions of rows). Also checks that the head row
    and every anchor agree with the chain.
    """
    report = Report()
    anchors = {a.seq: a for a in session.scalars(select(LedgerAnchor).order_by(LedgerAnchor.seq))}
    head = session.get(LedgerHead, 1)
    expected_seq, prev = 1, GENESIS
    for event in _rows(session, batch):
        problem = _check(event, expected_seq, prev)
        if problem:
            report.problem = problem
            return report
        anchor = anchors.get(event.seq)
        if anchor is not None:
            if anchor.head_hash != event.row_hash:
                report.problem = Problem(
                    event.seq,
                    event.id,
                    "anchor",
                    f"anchor of {anchor.created_at:%Y-%m-%d %H:%M} UTC does not match this row",
                )
                return report
            report.anchors_checked += 1
        report.checked += 1
        expected_seq, prev = event.seq + 1, event.row_hash
    report.head_seq, report.head_hash = expected_seq - 1, prev
    if head is None or head.seq != report.head_seq or head.hash != prev:
        report.problem = Problem(
            report.head_seq + 1,
            None,
            "head",
            f"the last rows are missing: the recorded head is seq {head.seq if head else '?'}",
        )
    elif any(seq > report.head_seq for seq in anchors):
        report.problem = Problem(
            report.head_seq + 1,
            None,
            "anchor",
            "an anchor names rows that are no longer in the ledger",
        )
    return report


def _check(event: ConsentEvent, expected_seq: int, prev: str) -> Problem | None:
    if event.seq != expected_seq:
        kind = "missing" if event.seq > expected_seq else "reordered"
        return Problem(
            expected_seq,
            None if kind == "missing" else event.id,
            kind,
            f"expected seq {expected_seq}, found {event.seq}",
        )
    if event.prev_hash != prev:
        return Problem(
            event.seq,
            event.id,
            "reordered",
            "does not point at the row before it (rows moved or replaced)",
        )
    if row_hash(event) != event.row_hash:
        return Problem(event.seq, event.id, "altered", "content does not match its hash")
    return None


def record_anchor(session: Session) -> LedgerAnchor:
    """Write the current head down as an anchor. Commits."""
    head = session.get(LedgerHead, 1)
    anchor = LedgerAnchor(seq=head.seq, head_hash=head.hash)
    session.add(anchor)
    session.commit()
    return anchor
