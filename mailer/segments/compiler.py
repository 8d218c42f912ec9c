"""Compile a rule tree (`mailer.segments.rules`) to one SQLAlchemy query over subscribers.

`member_ids(rules, now)` is a `Select` of `Subscriber.id`: no raw SQL from users, every value a
bound parameter, the same members on SQLite and PostgreSQL. `now` anchors "in the last N
days", so a count and the send that follows it agree, and tests are deterministic.

Shape of the SQL, for speed on large lists: conditions on the subscriber row are plain
(sargable) column comparisons, backed by the indexes of migration 0003; conditions on other
rows are `EXISTS` (or `IN`) subqueries, never joins that multiply rows. Every compiled
condition is two-valued (TRUE or FALSE, never NULL), so `not` negates exactly.

Pure: builds expressions, touches no session. The evaluator (`mailer.segments.evaluator`)
is the same semantics in Python; a property test holds the two together.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, false, func, not_, or_, select, true
from sqlalchemy.sql import ColumnElement

from mailer.campaigns.models import Delivery, DeliveryStatus
from mailer.segments import dialect
from mailer.segments.rules import validate_tree
from mailer.subscribers.models import Form, Subscriber, Subscription, Topic

Condition = dict[str, Any]
Where = ColumnElement[bool]


def member_ids(rules: dict[str, Any], now: datetime) -> Select[tuple[int]]:
    """The ids of the subscribers the rules select. `rules` may be raw or normalised (they are
    validated again; `RulesError` if invalid). `now` must be timezone-aware."""
    return select(Subscriber.id).where(where(rules, now))


def where(rules: dict[str, Any], now: datetime) -> Where:
    """The rules as one boolean expression over `Subscriber`, for callers composing their own
    query (a count, a sample, recipients intersected with a topic)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return _node(validate_tree(rules), now)


def _node(node: dict[str, Any], now: datetime) -> Where:
    if "all" in node:
        parts = [_node(child, now) for child in node["all"]]
        return and_(*parts) if parts else true()
    if "any" in node:
        parts = [_node(child, now) for child in node["any"]]
        return or_(*parts) if parts else false()
    if "not" in node:
        return not_(_node(node["not"], now))
    return CONDITIONS[node["field"]](node, now)


def _compare(left: Any, op: str, value: Any) -> Where:
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
        return left.in_(value)
    raise ValueError(f"not a comparison: {op}")


# Subscriber row --------------------------------------------------------------------------


def _email(c: Condition, now: datetime) -> Where:
    op, value = c["op"], c["value"]
    column = Subscriber.email
    if op == "in":
        return column.in_([v.lower() for v in value])
    needle = value.lower()
    if op == "eq":
        return column == needle
    if op == "contains":
        return dialect.Contains(column, needle)
    if op == "starts_with":
        return dialect.starts_with(column, needle)
    return dialect.EndsWith(column, needle)


def _email_domain(c: Condition, now: datetime) -> Where:
    domains = c["value"] if c["op"] == "in" else [c["value"]]
    return or_(*(dialect.EndsWith(Subscriber.email, "@" + d.lower()) for d in domains))


def _column(column: Any) -> Callable[[Condition, datetime], Where]:
    def compile_(c: Condition, now: datetime) -> Where:
        return _compare(column, c["op"], c.get("value"))

    return compile_


def _form(c: Condition, now: datetime) -> Where:
    column = Subscriber.source_form_id
    if c["op"] == "exists":
        return column.is_not(None)
    if c["op"] == "not_exists":
        return column.is_(None)
    refs = c["value"] if c["op"] == "in" else [c["value"]]
    ids = [r for r in refs if isinstance(r, int)]
    slugs = [r for r in refs if isinstance(r, str)]
    matches = []
    if ids:
        matches.append(column.in_(ids))
    if slugs:
        matches.append(column.in_(select(Form.id).where(Form.slug.in_(slugs))))
    # IS NOT NULL keeps the condition two-valued: NULL IN (...) is NULL, not FALSE.
    return and_(column.is_not(None), or_(*matches))


def _moment(column: Any, nullable: bool) -> Callable[[Condition, datetime], Where]:
    def compile_(c: Condition, now: datetime) -> Where:
        op = c["op"]
        if op == "exists":
            return column.is_not(None)
        if op == "not_exists":
            return column.is_(None)
        if op == "within_last_days":
            test = and_(column >= now - timedelta(days=c["value"]), column <= now)
        else:
            moment = datetime.fromisoformat(c["value"])
            test = column < moment if op == "before" else column >= moment
        return and_(column.is_not(None), test) if nullable else test

    return compile_


# Attributes (JSON) -------------------------------------------------------------------------


def _attribute(c: Condition, now: datetime) -> Where:
    key, kind, op = c["key"], c["type"], c["op"]
    document = Subscriber.attributes
    if kind == "boolean":
        is_true = dialect.JsonIs(document, key, "true")
        is_false = dialect.JsonIs(document, key, "false")
        if op == "exists":
            return or_(is_true, is_false)
        if op == "not_exists":
            return not_(or_(is_true, is_false))
        wanted = c["value"] if op == "eq" else not c["value"]
        return is_true if wanted else is_false

    text = dialect.JsonText(document, key)
    if kind == "number":
        present = dialect.JsonIs(document, key, "number")
    else:
        present = dialect.JsonIs(document, key, "string")
        if kind == "date":
            present = and_(present, dialect.IsIsoDate(text))
    if op == "exists":
        return present
    if op == "not_exists":
        return not_(present)

    if kind == "number":
        value = c["value"]
        operand = [dialect.number(v) for v in value] if op == "in" else dialect.number(value)
        # CASE, not AND: PostgreSQL must never cast a string to numeric, and AND does not
        # fix the order in which it evaluates.
        test = _compare(dialect.JsonNumber(document, key), op, operand)
        return case((present, test), else_=false())
    if kind == "date":
        return and_(
            present, _compare(dialect.ByCodePoint(func.substr(text, 1, 10)), op, c["value"])
        )
    # string: the comparison first, so PostgreSQL reads the type only for rows that pass it.
    if op in ("contains", "starts_with", "ends_with"):
        haystack = dialect.AsciiLower(text)
        needle = ascii_lower(c["value"])
        if op == "contains":
            test = dialect.Contains(haystack, needle)
        elif op == "starts_with":
            test = dialect.starts_with(haystack, needle)
        else:
            test = dialect.EndsWith(haystack, needle)
    elif op in ("eq", "ne", "in"):
        test = _compare(text, op, c["value"])
    else:
        test = _compare(dialect.ByCodePoint(text), op, c["value"])
    return and_(test, present)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lower A-Z only: what both databases' lower() agree on (see `dialect.AsciiLower`)."""
    return text.translate(_ASCII_LOWER)


# Other rows: subscriptions, deliveries ----------------------------------------------------


def _topic(c: Condition, now: datetime) -> Where:
    topic = c["topic"]
    if isinstance(topic, int):
        which = Subscription.topic_id == topic
    else:
        which = Subscription.topic_id == (
            select(Topic.id).where(Topic.slug == topic).scalar_subquery()
        )
    query = select(Subscription.id).where(Subscription.subscriber_id == Subscriber.id, which)
    op = c["op"]
    if op in ("eq", "in"):
        query = query.where(_compare(Subscription.status, op, c["value"]))
    found = query.exists()
    return not_(found) if op == "not_exists" else found


def _campaign(c: Condition, now: datetime) -> Where:
    query = select(Delivery.id).where(
        Delivery.subscriber_id == Subscriber.id, Delivery.campaign_id == c["value"]
    )
    op = c["op"]
    if op == "opened":
        query = query.where(Delivery.opened_at.is_not(None))
    elif op == "clicked":
        query = query.where(Delivery.clicked_at.is_not(None))
    else:
        query = query.where(Delivery.status == DeliveryStatus.SENT)
    return query.exists()


def _recent_campaigns(c: Condition, now: datetime) -> Where:
    """Per subscriber: read the N latest sent deliveries (an index probe on subscriber_id),
    and grade them in one pass: max() is 1 when there are some and none was opened (clicked),
    2 when one was, NULL when there are none.

    PostgreSQL runs this subquery only for the rows that pass the cheaper conditions. Measured
    on 1M subscribers with 3.3M deliveries, it beat a set-based window function (row_number
    over every sent delivery) both alone (3.1 s against 3.7 s) and with two other conditions
    (1.4 s against 3.1 s), and an index on (subscriber_id, status, sent_at) made no difference.
    """
    engaged = Delivery.opened_at if c["op"] == "none_opened" else Delivery.clicked_at
    recent = (
        select(engaged.label("engaged"))
        .where(Delivery.subscriber_id == Subscriber.id, Delivery.status == DeliveryStatus.SENT)
        .order_by(Delivery.sent_at.desc().nulls_last(), Delivery.id.desc())
        .limit(c["value"])
        .correlate(Subscriber)
        .subquery("recent")
    )
    grade = select(func.max(case((recent.c.engaged.is_(None), 1), else_=2))).scalar_subquery()
    return func.coalesce(grade, 0) == 1


CONDITIONS: dict[str, Callable[[Condition, datetime], Where]] = {
    "email": _email,
    "email_domain": _email_domain,
    "attribute": _attribute,
    "topic": _topic,
    "locale": _column(Subscriber.locale),
    "form": _form,
    "status": _column(Subscriber.status),
    "created_at": _moment(Subscriber.created_at, nullable=False),
    "confirmed_at": _moment(Subscriber.confirmed_at, nullable=True),
    "last_open_at": _moment(Subscriber.last_open_at, nullable=True),
    "last_click_at": _moment(Subscriber.last_click_at, nullable=True),
    "open_count": _column(Subscriber.open_count),
    "click_count": _column(Subscriber.click_count),
    "bounce_count": _column(Subscriber.bounce_count),
    "campaign": _campaign,
    "recent_campaigns": _recent_campaigns,
}
