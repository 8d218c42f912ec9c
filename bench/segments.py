"""Case 2, segment count: `mailer.segments.service.count` for a three-condition segment over a
large list, against the SQL a person would write by hand for the same question, on SQLite and
PostgreSQL. Both run on the same engine (`mailer.database.make_engine`, so SQLite has the
product's pragmas) with warm caches; the figure is the median of several runs, and the two
counts must agree.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, text

from bench import population
from mailer import migrate
from mailer.database import UTCDateTime, make_engine, make_sessionmaker
from mailer.segments import service

RULES = {
    "all": [
        {"field": "attribute", "key": "plan", "type": "string", "op": "eq", "value": "pro"},
        {"field": "topic", "topic": "news", "op": "eq", "value": "active"},
        {"field": "last_open_at", "op": "within_last_days", "value": 30},
    ]
}

_PLAN = {
    "postgresql": "s.attributes ->> 'plan' = 'pro'",
    "sqlite": "json_extract(s.attributes, '$.plan') = 'pro'",
}


def hand_written(dialect: str) -> Any:
    """The same question as RULES, as a person would write it."""
    statement = (
        "SELECT count(*) FROM subscribers s "  # noqa: S608 (constant SQL, values bound)
        "JOIN subscriptions x ON x.subscriber_id = s.id "
        "AND x.topic_id = :topic AND x.status = 'active' "
        f"WHERE {_PLAN[dialect]} "
        "AND s.last_open_at >= :since AND s.last_open_at <= :now"
    )
    return text(statement).bindparams(
        bindparam("since", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime())
    )


@dataclass
class SegmentResult:
    database: str
    subscribers: int
    members: int
    product_seconds: float
    hand_seconds: float
    load_seconds: float
    runs: int

    @property
    def ratio(self) -> float:
        return self.product_seconds / self.hand_seconds


def _median_seconds(call: Any, runs: int) -> tuple[float, Any]:
    result = call()  # warm the caches (and SQLAlchemy's statement cache)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        again = call()
        times.append(time.perf_counter() - started)
        if again != result:
            raise RuntimeError(f"the count changed between runs: {result} then {again}")
    return statistics.median(times), result


def measure(url: str, database: str, subscribers: int, runs: int, log: Any) -> SegmentResult:
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        topics = population.load_subscribers(engine, subscribers, everyone_active=False)
        load_seconds = time.perf_counter() - started
        log(f"  {database}: {subscribers:,} subscribers loaded in {load_seconds:.1f} s")
        now = datetime.now(UTC)
        sessions = make_sessionmaker(engine)

        def product() -> int:
            with sessions() as session:
                return service.count(session, RULES, now)

        query = hand_written(engine.dialect.name)
        values = {"topic": topics["news"], "since": now - timedelta(days=30), "now": now}

        def by_hand() -> int:
            with engine.connect() as conn:
                return int(conn.execute(query, values).scalar_one())

        product_seconds, members = _median_seconds(product, runs)
        hand_seconds, hand_members = _median_seconds(by_hand, runs)
        if members != hand_members:
            raise RuntimeError(
                f"{database}: the product counts {members}, the hand-written SQL {hand_members}"
            )
        return SegmentResult(
            database, subscribers, members, product_seconds, hand_seconds, load_seconds, runs
        )
    finally:
        engine.dispose()


def run(
    pg_url: str, sqlite_path: Path, subscribers: int, runs: int, log: Any
) -> list[SegmentResult]:
    results = []
    for database, url in (("SQLite", f"sqlite:///{sqlite_path}"), ("PostgreSQL", pg_url)):
        result = measure(url, database, subscribers, runs, log)
        log(
            f"  {database}: product {result.product_seconds * 1000:,.0f} ms, hand-written "
            f"{result.hand_seconds * 1000:,.0f} ms ({result.ratio:.2f}x), "
            f"{result.members:,} members"
        )
        results.append(result)
    return results
