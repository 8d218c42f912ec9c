"""What each kind of condition means to a marketer, on the real database.

Every case runs the compiled SQL and the Python evaluator (through `snapshot`, read back from
the database) and needs both to give the named people.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mailer.segments.compiler import member_ids
from mailer.segments.evaluator import matches, snapshot
from mailer.subscribers.models import Subscriber
from tests.segments.conftest import NOW, World


def members(world: World, rules: dict[str, Any]) -> set[str]:
    """Local parts of the members' addresses; fails if SQL and evaluator disagree."""
    session = world.session
    by_sql = set(
        session.scalars(select(Subscriber.email).where(Subscriber.id.in_(member_ids(rules, NOW))))
    )
    everyone = session.scalars(select(Subscriber)).all()
    by_python = {s.email for s in everyone if matches(rules, snapshot(session, s), NOW)}
    assert by_sql == by_python
    return {email.split("@")[0] for email in by_sql}


def attr(key: str, kind: str, op: str, value: Any = None) -> dict[str, Any]:
    rule = {"field": "attribute", "key": key, "type": kind, "op": op}
    if value is not None:
        rule["value"] = value
    return rule


@pytest.fixture
def plans(world: World) -> World:
    for name, plan in [
        ("lower", "pro"),
        ("title", "Pro"),
        ("accent", "pré"),
        ("accent_upper", "PRÉ"),
        ("number", 5),
        ("numeric_text", "5"),
        ("boolean", True),
        ("null", None),
        ("huge", 1e300),
        ("fraction", 5.0),
    ]:
        world.subscriber(f"{name}@example.org", attributes={"plan": plan})
    world.subscriber("missing@example.org", attributes={"other": "pro"})
    return world


def test_a_value_of_another_type_never_matches(plans):
    assert members(plans, attr("plan", "string", "eq", "pro")) == {"lower"}
    assert members(plans, attr("plan", "number", "eq", 5)) == {"number", "fraction"}
    assert members(plans, attr("plan", "string", "eq", "5")) == {"numeric_text"}
    assert members(plans, attr("plan", "boolean", "eq", True)) == {"boolean"}
    assert members(plans, attr("plan", "number", "gt", 5)) == {"huge"}


def test_not_matches_the_missing_and_the_wrongly_typed(plans):
    everyone_else = {
        "lower",
        "title",
        "accent",
        "accent_upper",
        "numeric_text",
        "boolean",
        "null",
        "missing",
    }
    assert members(plans, {"not": attr("plan", "number", "eq", 5)}) == {*everyone_else, "huge"}
    assert members(plans, attr("plan", "number", "ne", 5)) == {"huge"}  # ne needs a number
    assert members(plans, attr("plan", "number", "not_exists")) == everyone_else


def test_text_search_ignores_the_case_of_a_to_z_only(plans):
    assert members(plans, attr("plan", "string", "contains", "PR")) == {
        "lower",
        "title",
        "accent",
        "accent_upper",
    }
    assert members(plans, attr("plan", "string", "ends_with", "É")) == {"accent_upper"}
    assert members(plans, attr("plan", "string", "starts_with", "pr%")) == set()  # no wildcards


def test_dates_compare_by_the_date_written_first(world):
    for name, due in [
        ("day", "2025-01-31"),
        ("timestamp", "2025-01-31T23:30:00-05:00"),
        ("later", "2025-02-01"),
        ("garbled", "31/01/2025"),
        ("number", 20250131),
    ]:
        world.subscriber(f"{name}@example.org", attributes={"due": due})
    assert members(world, attr("due", "date", "eq", "2025-01-31")) == {"day", "timestamp"}
    assert members(world, attr("due", "date", "gt", "2025-01-31")) == {"later"}
    assert members(world, attr("due", "date", "exists")) == {"day", "timestamp", "later"}


def test_email_conditions_ignore_the_case_of_the_rule(world):
    world.subscriber("ann@example.org")
    world.subscriber("bob@shop.example.org")
    world.subscriber("eve@example.net")
    assert members(world, {"field": "email", "op": "eq", "value": "ANN@Example.org"}) == {"ann"}
    assert members(world, {"field": "email_domain", "op": "eq", "value": "EXAMPLE.ORG"}) == {"ann"}
    assert members(
        world, {"field": "email_domain", "op": "in", "value": ["shop.example.org", "example.net"]}
    ) == {"bob", "eve"}
    assert members(world, {"field": "email", "op": "contains", "value": "_"}) == set()


def test_subscribed_to_a_topic_means_an_active_subscription(world):
    world.subscriber("active@example.org", subscriptions={"news": "active"})
    world.subscriber("pending@example.org", subscriptions={"news": "pending"})
    world.subscriber("left@example.org", subscriptions={"news": "unsubscribed", "deals": "active"})
    world.subscriber("none@example.org")
    news = world.topics[0]
    subscribed = {"field": "topic", "topic": "news", "op": "eq", "value": "active"}
    assert members(world, subscribed) == {"active"}
    assert members(world, {**subscribed, "topic": news.id}) == {"active"}
    assert members(world, {"field": "topic", "topic": "news", "op": "exists"}) == {
        "active",
        "pending",
        "left",
    }
    assert members(world, {"not": subscribed}) == {"pending", "left", "none"}
    assert members(world, {**subscribed, "topic": "no-such-topic"}) == set()


def test_sign_up_form_by_slug_or_id(world):
    home, shop = world.forms
    world.subscriber("home@example.org", source_form_id=home.id)
    world.subscriber("shop@example.org", source_form_id=shop.id)
    world.subscriber("imported@example.org")
    assert members(world, {"field": "form", "op": "eq", "value": "home"}) == {"home"}
    assert members(world, {"field": "form", "op": "in", "value": [shop.id, "home"]}) == {
        "home",
        "shop",
    }
    assert members(world, {"not": {"field": "form", "op": "eq", "value": "home"}}) == {
        "shop",
        "imported",
    }


def test_in_the_last_n_days_is_counted_back_from_now(world):
    world.subscriber("today@example.org", created_at=NOW - timedelta(hours=1))
    world.subscriber("week@example.org", created_at=NOW - timedelta(days=7))
    world.subscriber("older@example.org", created_at=NOW - timedelta(days=7, microseconds=1))
    world.subscriber("future@example.org", created_at=NOW + timedelta(days=1))
    recent = {"field": "created_at", "op": "within_last_days", "value": 7}
    assert members(world, recent) == {"today", "week"}
    assert members(
        world,
        {"field": "created_at", "op": "before", "value": (NOW - timedelta(days=7)).isoformat()},
    ) == {"older"}


def test_never_opened_and_human_opens_only(world):
    world.subscriber("reader@example.org", last_open_at=NOW - timedelta(days=2), open_count=3)
    world.subscriber("proxy@example.org", machine_open_count=9)  # Apple's proxy, no person
    assert members(world, {"field": "last_open_at", "op": "not_exists"}) == {"proxy"}
    assert members(world, {"field": "open_count", "op": "gt", "value": 0}) == {"reader"}
    assert members(world, {"field": "last_open_at", "op": "within_last_days", "value": 7}) == {
        "reader",
    }


def test_opened_or_clicked_a_campaign(world):
    world.subscriber(
        "opened@example.org",
        deliveries=[{"campaign": 0, "status": "sent", "sent_at": NOW, "opened_at": NOW}],
    )
    world.subscriber(
        "clicked@example.org",
        deliveries=[
            {"campaign": 0, "status": "sent", "sent_at": NOW, "opened_at": NOW, "clicked_at": NOW}
        ],
    )
    world.subscriber(
        "machine@example.org",
        deliveries=[{"campaign": 0, "status": "sent", "sent_at": NOW, "machine_opened_at": NOW}],
    )
    world.subscriber("bounced@example.org", deliveries=[{"campaign": 0, "status": "failed"}])
    first = world.campaigns[0].id
    assert members(world, {"field": "campaign", "op": "opened", "value": first}) == {
        "opened",
        "clicked",
    }
    assert members(world, {"field": "campaign", "op": "clicked", "value": first}) == {"clicked"}
    assert members(world, {"field": "campaign", "op": "received", "value": first}) == {
        "opened",
        "clicked",
        "machine",
    }


def test_did_not_open_any_of_the_last_n_campaigns(world):
    def sent(campaign: int, days_ago: int, opened: bool = False) -> dict[str, Any]:
        at = NOW - timedelta(days=days_ago)
        return {
            "campaign": campaign,
            "status": "sent",
            "sent_at": at,
            "opened_at": at if opened else None,
        }

    world.subscriber(
        "lapsed@example.org",
        deliveries=[sent(0, 30, opened=True), sent(1, 20), sent(2, 10), sent(3, 1)],
    )
    world.subscriber(
        "recent@example.org", deliveries=[sent(0, 30), sent(1, 20), sent(2, 10, opened=True)]
    )
    world.subscriber("newcomer@example.org", deliveries=[sent(3, 1)])
    world.subscriber("newcomer_reader@example.org", deliveries=[sent(3, 1, opened=True)])
    world.subscriber("unsent@example.org", deliveries=[{"campaign": 3, "status": "pending"}])
    world.subscriber("never_mailed@example.org")
    lapsed = {"field": "recent_campaigns", "op": "none_opened", "value": 3}
    # Fewer than N campaigns received: judged on those; none received: not in the segment.
    assert members(world, lapsed) == {"lapsed", "newcomer"}
    assert members(world, {**lapsed, "value": 4}) == {"newcomer"}
