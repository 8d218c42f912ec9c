"""Fold tracking hits from the Redis stream into event rows, profiles and deliveries.

Per batch, in one transaction: the event rows (keyed by stream entry id, unique), the
subscriber's engagement counters and the delivery's first-open/first-click times, all
computed in SQL (`count = count + n`) so two flushes at once never lose an update. Only after
the commit are the entries acknowledged. A flush that dies in between leaves its entries
pending; the next one reclaims them, finds the rows already there and counts nothing twice.

Dropped at flush (acknowledged, nothing written): hits for a delivery that no longer exists or
whose subscriber was erased, hits for a subscriber who switched tracking off, and opens or
clicks of a campaign whose open or click tracking was switched off after sending.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, Delivery
from mailer.database import UTCDateTime
from mailer.subscribers.models import Subscriber
from mailer.tracking import classify, stream
from mailer.tracking.models import REASON_MAX, USER_AGENT_MAX, EventKind, TrackingEvent

log = logging.getLogger(__name__)

BATCH_SIZE = 500
MAX_BATCHES = 40
# Pending this long, an entry's reader is presumed dead (a batch takes well under a second).
RECLAIM_IDLE_MS = 60_000
_RETRIES = 3


@dataclass
class FlushReport:
    recorded: int = 0  # event rows written
    duplicates: int = 0  # already written by an earlier flush (its reader died before acking)
    dropped: int = 0  # see the module docstring; also malformed entries
    reclaimed: int = 0  # entries taken over from a consumer that stopped


@dataclass(frozen=True)
class _Hit:
    stream_id: str
    kind: EventKind
    delivery_id: int
    at: datetime
    reason: str | None
    user_agent: str | None
    url: str | None
    link_index: int | None


@dataclass
class _Target:
    campaign_id: int
    subscriber_id: int
    sent_at: datetime | None
    track: dict[EventKind, bool]


@dataclass
class _Totals:
    counts: dict[str, int] = field(default_factory=dict)
    latest: dict[str, datetime] = field(default_factory=dict)
    earliest: dict[str, datetime] = field(default_factory=dict)

    def add(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def later(self, name: str, at: datetime) -> None:
        self.latest[name] = max(at, self.latest.get(name, at))

    def sooner(self, name: str, at: datetime) -> None:
        self.earliest[name] = min(at, self.earliest.get(name, at))


def flush_events(
    session: Session,
    connection: redis.Redis,
    *,
    machine_open_seconds: int,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    reclaim_idle_ms: int = RECLAIM_IDLE_MS,
    consumer: str | None = None,
) -> FlushReport:
    """Reclaim entries a dead reader left pending, then flush new ones, batch by batch.

    Commits once per batch, then acknowledges it. Safe to rerun and to run concurrently
    (`workers.jobs.flush_tracking` runs every few seconds): rows are unique per entry.
    """
    stream.ensure_group(connection)
    consumer = consumer or stream.consumer_name()
    report = FlushReport()
    start = "0-0"
    for _ in range(max_batches):
        start, entries, gone = stream.claim_stale(
            connection, consumer, reclaim_idle_ms, batch_size, start
        )
        stream.acknowledge(connection, gone)
        if entries:
            report.reclaimed += len(entries)
            _flush_batch(session, connection, entries, machine_open_seconds, report)
        if start == "0-0":
            break
    for _ in range(max_batches):
        entries = stream.read_new(connection, consumer, batch_size)
        if not entries:
            break
        _flush_batch(session, connection, entries, machine_open_seconds, report)
    stream.retire(connection, consumer)
    return report


def _flush_batch(
    session: Session,
    connection: redis.Redis,
    entries: list[stream.Entry],
    machine_open_seconds: int,
    report: FlushReport,
) -> None:
    hits = [hit for hit in (_parse(entry_id, fields) for entry_id, fields in entries) if hit]
    report.dropped += len(entries) - len(hits)
    for attempt in range(_RETRIES):
        try:
            recorded, duplicates = _write(session, hits, machine_open_seconds)
            session.commit()
            break
        except IntegrityError:
            # Another flush wrote some of these entries meanwhile: try again, skipping them.
            session.rollback()
            if attempt == _RETRIES - 1:
                raise
    report.recorded += recorded
    report.duplicates += duplicates
    report.dropped += len(hits) - recorded - duplicates
    stream.acknowledge(connection, [entry_id for entry_id, _ in entries])


def _write(session: Session, hits: list[_Hit], machine_open_seconds: int) -> tuple[int, int]:
    """Add rows and counters for `hits` (not committed); returns (recorded, duplicates)."""
    if not hits:
        return 0, 0
    targets = _targets(session, {hit.delivery_id for hit in hits})
    done = set(
        session.scalars(
            select(TrackingEvent.stream_id).where(
                TrackingEvent.stream_id.in_([hit.stream_id for hit in hits])
            )
        )
    )
    rows: list[dict[str, Any]] = []
    people: dict[int, _Totals] = {}
    messages: dict[int, _Totals] = {}
    for hit in hits:
        target = targets.get(hit.delivery_id)
        if hit.stream_id in done or target is None or not target.track[hit.kind]:
            continue
        seconds = (hit.at - target.sent_at).total_seconds() if target.sent_at else None
        reason = hit.reason or classify.by_timing(hit.kind, seconds, machine_open_seconds)
        rows.append(
            {
                "stream_id": hit.stream_id,
                "kind": hit.kind,
                "occurred_at": hit.at,
                "campaign_id": target.campaign_id,
                "delivery_id": hit.delivery_id,
                "subscriber_id": target.subscriber_id,
                "machine": reason is not None,
                "reason": reason,
                "link_index": hit.link_index,
                "url": hit.url,
                "user_agent": hit.user_agent,
            }
        )
        person = people.setdefault(target.subscriber_id, _Totals())
        message = messages.setdefault(hit.delivery_id, _Totals())
        if hit.kind is EventKind.OPEN and reason:
            person.add("machine_open_count")
            message.sooner("machine_opened_at", hit.at)
        elif hit.kind is EventKind.OPEN:
            person.add("open_count")
            person.later("last_open_at", hit.at)
            message.sooner("opened_at", hit.at)
        elif not reason:
            person.add("click_count")
            person.later("last_click_at", hit.at)
            message.sooner("clicked_at", hit.at)
    if rows:
        session.execute(insert(TrackingEvent), rows)
    _apply(session, Subscriber, people)
    _apply(session, Delivery, messages)
    duplicates = sum(1 for hit in hits if hit.stream_id in done)
    return len(rows), duplicates


def _targets(session: Session, delivery_ids: Iterable[int]) -> dict[int, _Target]:
    """Who and what each delivery is; erased subscribers (no subscriber) are left out, and
    so are subscribers who switched tracking off."""
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.campaign_id,
            Delivery.subscriber_id,
            Delivery.sent_at,
            Campaign.track_opens,
            Campaign.track_clicks,
        )
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(list(delivery_ids)), Subscriber.tracking_enabled.is_(True))
    )
    return {
        row.id: _Target(
            row.campaign_id,
            row.subscriber_id,
            row.sent_at,
            {EventKind.OPEN: row.track_opens, EventKind.CLICK: row.track_clicks},
        )
        for row in rows
    }


def _apply(session: Session, model: type, totals: dict[int, _Totals]) -> None:
    """Add `totals` to the rows of `model`, in SQL: one statement per shape (which counters
    and times a row gets), run for all its rows at once (executemany: one round trip per
    shape on PostgreSQL rather than one per row). Rows go in id order, so two flushes at once
    queue up rather than deadlock."""
    table = model.__table__
    shapes: dict[tuple, list[dict[str, Any]]] = {}
    for row_id in sorted(totals):
        t = totals[row_id]
        shape = (tuple(sorted(t.counts)), tuple(sorted(t.latest)), tuple(sorted(t.earliest)))
        shapes.setdefault(shape, []).append(
            {
                "row_id": row_id,
                **{f"n_{name}": n for name, n in t.counts.items()},
                **{f"t_{name}": at for name, at in t.latest.items()},
                **{f"t_{name}": at for name, at in t.earliest.items()},
            }
        )
    for (counts, latest, earliest), params in shapes.items():
        values: dict[str, Any] = {}
        for name in counts:
            values[name] = table.c[name] + bindparam(f"n_{name}")
        for name in latest:
            values[name] = _pick(table.c[name], f"t_{name}", later=True)
        for name in earliest:
            values[name] = _pick(table.c[name], f"t_{name}", later=False)
        statement = update(table).where(table.c.id == bindparam("row_id")).values(values)
        session.execute(statement, params)


def _pick(column: Any, name: str, later: bool) -> Any:
    """SQL for "the later (or sooner) of the column and the bound time"; NULL is neither."""
    value = bindparam(name, type_=UTCDateTime())
    beaten = column < value if later else column > value
    return case((column.is_(None), value), (beaten, value), else_=column)


def _parse(entry_id: str, fields: dict[str, str]) -> _Hit | None:
    try:
        kind = EventKind(fields.get("k"))
        delivery_id = int(fields["d"])
        millis = int(entry_id.split("-", 1)[0])
        link_index = int(fields["i"]) if fields.get("i") else None
    except (KeyError, ValueError):
        log.warning("malformed tracking entry %s dropped", entry_id)
        return None
    return _Hit(
        stream_id=entry_id,
        kind=kind,
        delivery_id=delivery_id,
        at=datetime.fromtimestamp(millis / 1000, UTC),
        reason=(fields.get("r") or "")[:REASON_MAX] or None,
        user_agent=(fields.get("a") or "")[:USER_AGENT_MAX] or None,
        url=(fields.get("u") or None) if kind is EventKind.CLICK else None,
        link_index=link_index,
    )
