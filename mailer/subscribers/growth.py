"""How the list grows: sign-ups, confirmations and unsubscribes per day, each form's
confirmation rate, and today's headline figures.

Source: the consent ledger (`consent_events`), not the subscriber rows. The ledger is
append-only, so a day's figures never change afterwards: an erasure deletes the profile but
not its events, and a person who unsubscribes and later comes back keeps both events (the
profile's `unsubscribed_at` is cleared when they come back, and `created_at` goes with an
erased profile). Every series is one grouped query over a range of the `occurred_at` index,
counting distinct people per day:

- new: people who asked to subscribe (form, import awaiting confirmation) or were imported
  with evidence of consent (`requested`, `imported`);
- confirmed: people who confirmed (double opt-in, preference centre) or were imported with
  evidence (`confirmed`, `imported`);
- unsubscribed: people who withdrew consent to a topic (`withdrawn`).

Days are UTC days, cut by the database (`UtcDay`: `to_char(... AT TIME ZONE 'UTC')` on
PostgreSQL, the stored text's date on SQLite), so both give the same buckets.

Reads only; nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import ColumnElement, expression
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import String

from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.delivery.models import BLOCKING, Suppression
from mailer.subscribers.models import Form, Subscriber, SubscriberStatus

PERIODS = (30, 90)
SERIES: dict[str, tuple[ConsentEventType, ...]] = {
    "new": (ConsentEventType.REQUESTED, ConsentEventType.IMPORTED),
    "confirmed": (ConsentEventType.CONFIRMED, ConsentEventType.IMPORTED),
    "unsubscribed": (ConsentEventType.WITHDRAWN,),
}


class UtcDay(expression.FunctionElement):
    """`YYYY-MM-DD` of a UTC timestamp column, as text, on both databases."""

    type = String()
    inherit_cache = True


@compiles(UtcDay, "sqlite")
def _utc_day_sqlite(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff', already in UTC (mailer.database.UTCDateTime).
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@compiles(UtcDay, "postgresql")
def _utc_day_pg(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"to_char(({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@dataclass(frozen=True)
class Period:
    """The `days` UTC days ending with `last` (included)."""

    last: date
    days: int

    @property
    def first(self) -> date:
        return self.last - timedelta(days=self.days - 1)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive."""
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.days)]


def period(now: datetime, days: int) -> Period:
    """The last `days` days up to and including today (UTC)."""
    return Period(now.astimezone(UTC).date(), days)


@dataclass(frozen=True)
class Growth:
    days: list[date]
    new: list[int]
    confirmed: list[int]
    unsubscribed: list[int]


def _per_day(session: Session, span: Period, types: tuple[ConsentEventType, ...]) -> list[int]:
    day: ColumnElement[str] = UtcDay(ConsentEvent.occurred_at)
    rows = session.execute(
        select(day, func.count(distinct(ConsentEvent.subscriber_id)))
        .where(
            ConsentEvent.occurred_at >= span.start,
            ConsentEvent.occurred_at < span.end,
            ConsentEvent.type.in_(types),
        )
        .group_by(day)
    ).all()
    counts = {str(d): n for d, n in rows}
    return [counts.get(d.isoformat(), 0) for d in span.dates()]


def daily(session: Session, span: Period) -> Growth:
    """The three series over the period, one value per day (zero-filled)."""
    return Growth(
        days=span.dates(),
        new=_per_day(session, span, SERIES["new"]),
        confirmed=_per_day(session, span, SERIES["confirmed"]),
        unsubscribed=_per_day(session, span, SERIES["unsubscribed"]),
    )


@dataclass(frozen=True)
class FormRate:
    form_id: int
    slug: str
    name: str
    requested: int  # people who asked through the form in the period
    confirmed: int  # of them, how many have confirmed through it (by now)

    @property
    def rate(self) -> float:
        return self.confirmed / self.requested if self.requested else 0.0


def form_rates(session: Session, span: Period) -> list[FormRate]:
    """Per form, of the people who asked to subscribe through it in the period, how many
    confirmed (at any time since; someone who had confirmed before and asked again counts
    as confirmed). Forms without requests in the period are left out. One query: the
    requests in the period, each joined to that person's confirmations of the same form
    through the ledger's (subscriber_id, occurred_at) index."""
    asked = aliased(ConsentEvent)
    confirmed = aliased(ConsentEvent)
    rows = session.execute(
        select(
            asked.form_id,
            func.count(distinct(asked.subscriber_id)),
            func.count(distinct(confirmed.subscriber_id)),
        )
        .outerjoin(
            confirmed,
            (confirmed.subscriber_id == asked.subscriber_id)
            & (confirmed.form_id == asked.form_id)
            & (confirmed.type == ConsentEventType.CONFIRMED),
        )
        .where(
            asked.type == ConsentEventType.REQUESTED,
            asked.form_id.is_not(None),
            asked.occurred_at >= span.start,
            asked.occurred_at < span.end,
        )
        .group_by(asked.form_id)
    ).all()
    names = {
        form_id: (slug, name)
        for form_id, slug, name in session.execute(
            select(Form.id, Form.slug, Form.name).where(Form.id.in_([r[0] for r in rows]))
        )
    }
    rates = [
        FormRate(form_id, *names.get(form_id, (f"#{form_id}", f"Form #{form_id}")), asked_n, done)
        for form_id, asked_n, done in rows
    ]
    rates.sort(key=lambda r: (-r.requested, r.name))
    return rates


@dataclass(frozen=True)
class Headline:
    active: int
    pending: int
    unsubscribed: int
    suppressed: int  # addresses we must not mail (hard bounces, complaints, by hand)


def headline(session: Session) -> Headline:
    """Subscribers by status (one grouped query on the status index) and the suppressions
    that block mail (erasure markers are not counted: they block only re-imports)."""
    by_status = dict(
        session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all()
    )
    suppressed = session.scalar(
        select(func.count()).select_from(Suppression).where(Suppression.reason.in_(BLOCKING))
    )
    return Headline(
        active=by_status.get(SubscriberStatus.ACTIVE, 0),
        pending=by_status.get(SubscriberStatus.PENDING, 0),
        unsubscribed=by_status.get(SubscriberStatus.UNSUBSCRIBED, 0),
        suppressed=suppressed or 0,
    )
