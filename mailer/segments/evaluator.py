"""The rule tree in plain Python: does one subscriber match? The same semantics as the SQL of
`mailer.segments.compiler` (see `mailer.segments.rules` for what each condition means).

It exists to hold the compiler to account (a property test compares the two on random
subscribers and trees) and to explain a single subscriber ("why is Ann in this segment?").
For counting a list, use the compiler: this reads one profile at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Delivery
from mailer.segments.compiler import ascii_lower
from mailer.segments.rules import validate_tree
from mailer.subscribers.models import Form, Subscriber, Subscription, Topic

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ]|\Z)")


@dataclass(frozen=True)
class SubscriptionFact:
    topic_id: int
    topic_slug: str
    status: str  # SubscriptionStatus value


@dataclass(frozen=True)
class DeliveryFact:
    id: int
    campaign_id: int
    status: str  # DeliveryStatus value
    sent_at: datetime | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None


@dataclass(frozen=True)
class SubscriberSnapshot:
    """What a rule can see of one subscriber. Statuses are the enums' string values."""

    email: str
    created_at: datetime
    locale: str = "en"
    status: str = "pending"
    attributes: dict[str, Any] = field(default_factory=dict)
    source_form_id: int | None = None
    source_form_slug: str | None = None
    confirmed_at: datetime | None = None
    last_open_at: datetime | None = None
    last_click_at: datetime | None = None
    open_count: int = 0
    click_count: int = 0
    bounce_count: int = 0
    subscriptions: tuple[SubscriptionFact, ...] = ()
    deliveries: tuple[DeliveryFact, ...] = ()


def snapshot(session: Session, subscriber: Subscriber) -> SubscriberSnapshot:
    """Read one subscriber's snapshot (three small queries). Reads only; never commits."""
    subscriptions = session.execute(
        select(Subscription.topic_id, Topic.slug, Subscription.status)
        .join(Topic, Topic.id == Subscription.topic_id)
        .where(Subscription.subscriber_id == subscriber.id)
    ).all()
    deliveries = session.scalars(select(Delivery).where(Delivery.subscriber_id == subscriber.id))
    form_slug = (
        session.scalar(select(Form.slug).where(Form.id == subscriber.source_form_id))
        if subscriber.source_form_id is not None
        else None
    )
    return SubscriberSnapshot(
        email=subscriber.email,
        created_at=subscriber.created_at,
        locale=subscriber.locale,
        status=subscriber.status.value,
        attributes=dict(subscriber.attributes or {}),
        source_form_id=subscriber.source_form_id,
        source_form_slug=form_slug,
        confirmed_at=subscriber.confirmed_at,
        last_open_at=subscriber.last_open_at,
        last_click_at=subscriber.last_click_at,
        open_count=subscriber.open_count,
        click_count=subscriber.click_count,
        bounce_count=subscriber.bounce_count,
        subscriptions=tuple(SubscriptionFact(t, slug, s.value) for t, slug, s in subscriptions),
        deliveries=tuple(
            DeliveryFact(d.id, d.campaign_id, d.status.value, d.sent_at, d.opened_at, d.clicked_at)
            for d in deliveries
        ),
    )


def matches(rules: dict[str, Any], subscriber: SubscriberSnapshot, now: datetime) -> bool:
    """Whether the subscriber is in the segment at `now`. Raises `RulesError` if invalid."""
    return _node(validate_tree(rules), subscriber, now)


def _node(node: dict[str, Any], s: SubscriberSnapshot, now: datetime) -> bool:
    if "all" in node:
        return all(_node(child, s, now) for child in node["all"])
    if "any" in node:
        return any(_node(child, s, now) for child in node["any"])
    if "not" in node:
        return not _node(node["not"], s, now)
    return CONDITIONS[node["field"]](node, s, now)


def _compare(left: Any, op: str, value: Any) -> bool:
    if op == "eq":
        return left == value
    if op == "ne":
        return left != value
    if op == "lt":
        return left < value
    if op == "lte":
        return left <= value
    if op == "gt":
        return left > value
    if op == "gte":
        return left >= value
    if op == "in":
        return left in value
    raise ValueError(f"not a comparison: {op}")


Check = Callable[[dict[str, Any], SubscriberSnapshot, datetime], bool]


def _email(c: dict[str, Any], s: SubscriberSnapshot, now: datetime) -> bool:
    op, value = c["op"], c["value"]
    if op == "in":
        return s.email in {v.lower() for v in value}
    needle = value.lower()
    if op == "eq":
        return s.email == needle
    if op == "contains":
        return needle in s.email
    if op == "starts_with":
        return s.email.startswith(needle)
    return s.email.endswith(needle)


def _email_domain(c: dict[str, Any], s: SubscriberSnapshot, now: datetime) -> bool:
    domains = c["value"] if c["op"] == "in" else [c["value"]]
    return any(s.email.endswith("@" + d.lower()) for d in domains)


def _attr(name: str) -> Check:
    return lambda c, s, now: _compare(getattr(s, name), c["op"], c.get("value"))


def _form(c: dict[str, Any], s: SubscriberSnapshot, now: datetime) -> bool:
    if c["op"] == "exists":
        return s.source_form_id is not None
    if c["op"] == "not_exists":
        return s.source_form_id is None
    refs = c["value"] if c["op"] == "in" else [c["value"]]
    if s.source_form_id is None:
        return False
    return any(
        (r == s.source_form_id) if isinstance(r, int) else (r == s.source_form_slug) for r in refs
    )


def _moment(name: str) -> Check:
    def check(c: dict[str, Any], s: SubscriberSnapshot, now: datetime) -> bool:
        value: datetime | None = getattr(s, name)
        op = c["op"]
        if op == "exists":
            return value is not None
        if op == "not_exists":
            return value is None
        if value is None:
            return False
        if op == "within_last_days":
            return now - timedelta(days=c["value"]) <= value <= now
        moment = datetime.fromisoformat(c["value"])
        return value < moment if op == "before" else value >= moment

    return check


def _number(value: Any) -> Decimal | None:
    """A JSON number's exact decimal value (what PostgreSQL's numeric reads from the text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _attribute(c: dict[str, Any], s: SubscriberSnapshot, now: datetime) -> bool:
    key, kind, op = c["key"], c["type"], c["op"]
    attributes = s.attributes if isinstance(s.attributes, dict) else {}
    raw = attributes.get(key)
    present: Any = None  # the value as its type, or None when missing or of another type
    if kind == "boolean":
        present = raw if isinstance(raw, bool) else None
    elif kind == "number":
        present = _number(raw)
    elif kind == "string":
        present = raw if isinstance(raw, str) else None
    elif isinstance(raw, str) and _ISO_DATE.match(raw):
        present = raw[:10]
    if op == "exists":
        return present is not None
    if op == "not_exists":
        return present is None
    if present is None:
        return False
    value = c["value"]
    if kind == "number":
        operand = [_number(v) for v in value] if op == "in" else _number(value)
        return _compare(present, op, operand)
    if op == "contains":
        return ascii_lower(value) in ascii_lower(present)
    if op == "starts_with":
        return ascii_lower(present).startswith(ascii_lower(value))
    if op == "ends_with":
        return ascii_lower(present).endswith(ascii_lower(value))
    return _compare(present, op, value)


def _topic(c: dict[str, Any], s: SubscriberSnapshot, now: datetime) -> bool:
    topic, op = c["topic"], c["op"]
    rows = [
        sub
        for sub in s.subscriptions
        if (sub.topic_id == topic if isinstance(topic, int) else sub.topic_slug == topic)
    ]
    if op == "exists":
        return bool(rows)
    if op == "not_exists":
        return not rows
    return any(_compare(sub.status, op, c["value"]) for sub in rows)


def _campaign(c: dict[str, Any], s: SubscriberSnapshot, now: datetime) -> bool:
    op = c["op"]
    for d in s.deliveries:
        if d.campaign_id != c["value"]:
            continue
        if op == "opened" and d.opened_at is not None:
            return True
        if op == "clicked" and d.clicked_at is not None:
            return True
        if op == "received" and d.status == "sent":
            return True
    return False


def latest_sent(deliveries: Iterable[DeliveryFact], n: int) -> list[DeliveryFact]:
    """The n most recent sent deliveries: by sent_at, latest first (none last), then by id."""
    sent = [d for d in deliveries if d.status == "sent"]
    sent.sort(key=lambda d: (d.sent_at is not None, d.sent_at or datetime.min, d.id), reverse=True)
    return sent[:n]


def _recent_campaigns(c: dict[str, Any], s: SubscriberSnapshot, now: datetime) -> bool:
    recent = latest_sent(s.deliveries, c["value"])
    if c["op"] == "none_opened":
        return bool(recent) and all(d.opened_at is None for d in recent)
    return bool(recent) and all(d.clicked_at is None for d in recent)


CONDITIONS: dict[str, Check] = {
    "email": _email,
    "email_domain": _email_domain,
    "attribute": _attribute,
    "topic": _topic,
    "locale": _attr("locale"),
    "form": _form,
    "status": _attr("status"),
    "created_at": _moment("created_at"),
    "confirmed_at": _moment("confirmed_at"),
    "last_open_at": _moment("last_open_at"),
    "last_click_at": _moment("last_click_at"),
    "open_count": _attr("open_count"),
    "click_count": _attr("click_count"),
    "bounce_count": _attr("bounce_count"),
    "campaign": _campaign,
    "recent_campaigns": _recent_campaigns,
}
