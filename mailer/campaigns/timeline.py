"""A campaign's opens and clicks over time, people and machines apart, for its report charts.

Events are counted in SQL per hour (or per day once they span more than three days), keyed
by the UTC hour or day as text, so the same rows give the same buckets on SQLite and
PostgreSQL; empty buckets between the first and the last are filled in here. Every event is
counted (a person opening twice is two opens): the unique figures are in `reports.report`.

Reads only; rerunning is safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.tracking.models import EventKind, TrackingEvent

HOURLY_SPAN = timedelta(days=3)
MAX_BUCKETS = 400
SERIES = ("human_opens", "machine_opens", "human_clicks", "machine_clicks")


@dataclass(frozen=True)
class Timeline:
    unit: str  # "hour" or "day"
    starts: list[datetime]  # the start of each bucket, UTC
    counts: dict[str, list[int]]  # SERIES -> one count per bucket

    @property
    def labels(self) -> list[str]:
        fmt = "%m-%d %H:00" if self.unit == "hour" else "%Y-%m-%d"
        return [start.strftime(fmt) for start in self.starts]

    @property
    def empty(self) -> bool:
        return not self.starts


def _bucket(session: Session, unit: str) -> Any:
    """The event's UTC hour ("YYYY-MM-DD HH") or day ("YYYY-MM-DD") as text."""
    column = TrackingEvent.occurred_at
    if session.get_bind().dialect.name == "postgresql":
        pattern = "YYYY-MM-DD HH24" if unit == "hour" else "YYYY-MM-DD"
        return func.to_char(func.timezone("UTC", column), pattern)
    # SQLite keeps UTC times as "YYYY-MM-DD HH:MM:SS.ffffff".
    return func.substr(column, 1, 13 if unit == "hour" else 10)


def _parse(key: str, unit: str) -> datetime:
    fmt = "%Y-%m-%d %H" if unit == "hour" else "%Y-%m-%d"
    return datetime.strptime(key, fmt).replace(tzinfo=UTC)


def _floor(moment: datetime, unit: str) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if unit == "day" else moment


def engagement(session: Session, campaign_id: int, since: datetime | None = None) -> Timeline:
    """Opens and clicks per hour or day, from `since` (the campaign's start; default: the
    first event) to the last event."""
    mine = TrackingEvent.campaign_id == campaign_id
    first, last = session.execute(
        select(func.min(TrackingEvent.occurred_at), func.max(TrackingEvent.occurred_at)).where(mine)
    ).one()
    if first is None:
        return Timeline("hour", [], {name: [] for name in SERIES})
    if since is not None and since < first:
        first = since
    unit = "hour" if last - first <= HOURLY_SPAN else "day"
    bucket = _bucket(session, unit).label("bucket")
    rows = session.execute(
        select(bucket, TrackingEvent.kind, TrackingEvent.machine, func.count())
        .where(mine)
        .group_by(bucket, TrackingEvent.kind, TrackingEvent.machine)
    ).all()
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    found = {}
    for key, kind, machine, n in rows:
        what = "opens" if kind is EventKind.OPEN else "clicks"
        name = f"{'machine' if machine else 'human'}_{what}"
        found[(_parse(key, unit), name)] = n
    start = min(_floor(first, unit), *(at for at, _ in found))
    end = max(at for at, _ in found)
    starts = []
    at = start
    while at <= end and len(starts) < MAX_BUCKETS:
        starts.append(at)
        at += step
    counts = {name: [found.get((s, name), 0) for s in starts] for name in SERIES}
    return Timeline(unit, starts, counts)
