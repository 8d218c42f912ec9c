"""The compiled SQL and the Python evaluator select the same members, on the real database.

Random subscribers (attributes of mixed types, missing keys, unicode, numbers as strings,
date-like strings; subscriptions; deliveries opened and clicked; engagement fields) and random
rule trees, drawn from small pools of values so that conditions often sit exactly on the
data (equal values, boundary instants, tied send times). Run with `--db sqlite` and
`--db postgresql`: both must agree with the one Python semantics, hence with each other.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from mailer.campaigns.models import Delivery, DeliveryStatus
from mailer.segments import service
from mailer.segments.compiler import member_ids, where
from mailer.segments.evaluator import (
    DeliveryFact,
    SubscriberSnapshot,
    SubscriptionFact,
    matches,
)
from mailer.segments.grammar import ATTRIBUTE_OPS
from mailer.segments.rules import validate_tree
from mailer.subscribers.models import Subscriber, Subscription
from tests.segments.conftest import NOW, World

# -- values --------------------------------------------------------------------------------
# Each attribute key mostly holds values of one type (as in real lists) and sometimes any
# other: rules then often compare like with like, and wrong types still turn up.

SAFE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=8,
)
WORDS = ["pro", "Pro", "PRO", "pRo", "pré", "PRÉ", "Free", "5", "true", "", " pro", "ø", "Ø"]
NEEDLES = ["pro", "PR", "Pr", "o", "é", "É", "ree", "ø", "Ø", " ", "5"]
DATES = ["2024-05-01", "2024-04-30", "2025-06-15", "2025-06-14", "1999-12-31"]
DATE_LIKE = [
    *DATES,
    "2024-05-01T10:00:00Z",
    "2024-05-01 08:00",
    "2024-05-01x",
    "2024-5-1",
    "2024-05-0",
    "٢٠٢٤-05-01",
]
INTS = [-1, 0, 1, 5, 10, 2**53, -(2**53)]
FLOATS = [0.1, 0.5, 5.0, 1e-7, 1e300, -0.0, 9.999999999999999]

texts = st.one_of(st.sampled_from(WORDS), st.sampled_from(WORDS), SAFE_TEXT)
numbers = st.one_of(
    st.sampled_from(INTS),
    st.sampled_from(FLOATS),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
)
dates = st.sampled_from(DATES)
any_value = st.one_of(
    texts,
    numbers,
    st.booleans(),
    st.none(),
    st.sampled_from(DATE_LIKE),
    st.sampled_from(["5", "0.1", "1e3", "-0"]),  # numbers as strings
    st.just([1, "pro"]),
    st.just({"plan": "pro"}),
)
# key -> (the type it usually holds, values of that type)
KEYS = {
    "plan": ("string", texts),
    "score": ("number", numbers),
    "due": ("date", st.sampled_from(DATE_LIKE)),
    "vip": ("boolean", st.booleans()),
}
GHOST = "never set"
MISSING = object()
attributes = st.fixed_dictionaries(
    {
        key: st.one_of(typical, typical, any_value, st.just(MISSING))
        for key, (_, typical) in KEYS.items()
    }
).map(lambda values: {k: v for k, v in values.items() if v is not MISSING})
# Fields by weight: attributes have the most cases to get right.
FIELD_MIX = [
    *["attribute"] * 6,
    *["email", "recent_campaigns", "topic"] * 2,
    "email_domain",
    "locale",
    "form",
    "status",
    "created_at",
    "confirmed_at",
    "last_open_at",
    "last_click_at",
    "open_count",
    "click_count",
    "bounce_count",
    "campaign",
]

# Instants near the boundaries that the rules use (within_last_days 1/7/30 from NOW).
DAY_OFFSETS = [0, -1, -7, -30, -31, -400, 2]
MICROS = [0, 0, 0, 1, -1, 3_600_000_000]
moments = st.builds(
    lambda d, u: NOW + timedelta(days=d, microseconds=u),
    st.sampled_from(DAY_OFFSETS),
    st.sampled_from(MICROS),
)
SEND_TIMES = [NOW - timedelta(days=d) for d in (1, 7, 30)]
LOCALES = ["en", "nb", "da"]
STATUSES = ["pending", "active", "unsubscribed"]
DELIVERY_STATUSES = ["sent", "sent", "sent", "pending", "failed", "skipped"]
LOCALS = st.text(alphabet="abeø._", min_size=1, max_size=4)
DOMAINS = ["example.org", "mail.example.org", "exämple.no", "x.io"]


def subscribers(world: World) -> st.SearchStrategy[dict[str, Any]]:
    delivery = st.fixed_dictionaries(
        {
            "status": st.sampled_from(DELIVERY_STATUSES),
            # Few distinct send times: ties (broken by delivery id) and NULLs are common.
            "sent_at": st.sampled_from([None, *SEND_TIMES]),
            "opened_at": st.one_of(st.none(), moments),
            "clicked_at": st.one_of(st.none(), moments),
        }
    )
    return st.fixed_dictionaries(
        {
            "local": LOCALS,
            "domain": st.sampled_from(DOMAINS),
            "locale": st.sampled_from(LOCALES),
            "status": st.sampled_from(STATUSES),
            "attributes": attributes,
            "form": st.sampled_from([None, *range(len(world.forms))]),
            "created_at": moments,
            "confirmed_at": st.one_of(st.none(), moments),
            "last_open_at": st.one_of(st.none(), moments),
            "last_click_at": st.one_of(st.none(), moments),
            "open_count": st.integers(0, 4),
            "click_count": st.integers(0, 4),
            "bounce_count": st.integers(0, 2),
            "subscriptions": st.dictionaries(
                st.sampled_from(range(len(world.topics))), st.sampled_from(STATUSES)
            ),
            "deliveries": st.dictionaries(
                st.sampled_from(range(len(world.campaigns))), delivery, max_size=4
            ),
        }
    )


# -- rules ---------------------------------------------------------------------------------


def _one_or_list(values: st.SearchStrategy[Any], op: str) -> st.SearchStrategy[Any]:
    return st.lists(values, min_size=1, max_size=3) if op == "in" else values


def _attribute_condition(draw: st.DrawFn) -> dict[str, Any]:
    key = draw(st.sampled_from([*KEYS, GHOST]))
    usual = KEYS.get(key, ("string", None))[0]
    kind = draw(st.one_of(st.just(usual), st.just(usual), st.sampled_from(list(ATTRIBUTE_OPS))))
    ops = list(ATTRIBUTE_OPS[kind])
    if kind == "string":  # the case-folding ops have the most to get wrong
        ops += ["contains", "starts_with", "ends_with"] * 2
    op = draw(st.sampled_from(ops))
    condition = {"field": "attribute", "key": key, "type": kind, "op": op}
    if op in ("exists", "not_exists"):
        return condition
    values = {
        "string": st.one_of(st.sampled_from(NEEDLES), texts.filter(bool))
        if op in ("contains", "starts_with", "ends_with")
        else texts,
        "number": numbers,
        "date": dates,
        "boolean": st.booleans(),
    }[kind]
    condition["value"] = draw(_one_or_list(values, op))
    return condition


def conditions(world: World) -> st.SearchStrategy[dict[str, Any]]:
    topic_refs = st.sampled_from(
        [t.slug for t in world.topics] + [t.id for t in world.topics] + ["gone", 999]
    )
    form_refs = st.sampled_from([f.slug for f in world.forms] + [f.id for f in world.forms])
    campaign_ids = st.sampled_from([c.id for c in world.campaigns])
    datetimes = moments.map(lambda m: m.isoformat())

    @st.composite
    def condition(draw: st.DrawFn) -> dict[str, Any]:
        field = draw(st.sampled_from(FIELD_MIX))
        if field == "attribute":
            return _attribute_condition(draw)
        if field == "email":
            op = draw(st.sampled_from(["eq", "in", "contains", "starts_with", "ends_with"]))
            pool = st.one_of(
                st.sampled_from(["A", "Ø", "b@", "@EXAMPLE.org", ".io", "a@x.io", "e"]), LOCALS
            )
            return {"field": field, "op": op, "value": draw(_one_or_list(pool, op))}
        if field == "email_domain":
            op = draw(st.sampled_from(["eq", "in"]))
            pool = st.sampled_from([*DOMAINS, "EXAMPLE.ORG", "example"])
            return {"field": field, "op": op, "value": draw(_one_or_list(pool, op))}
        if field == "topic":
            op = draw(st.sampled_from(["eq", "in", "exists", "not_exists"]))
            condition = {"field": field, "topic": draw(topic_refs), "op": op}
            if op in ("eq", "in"):
                condition["value"] = draw(_one_or_list(st.sampled_from(STATUSES), op))
            return condition
        if field in ("locale", "status"):
            op = draw(st.sampled_from(["eq", "ne", "in"]))
            pool = st.sampled_from(LOCALES if field == "locale" else STATUSES)
            return {"field": field, "op": op, "value": draw(_one_or_list(pool, op))}
        if field == "form":
            op = draw(st.sampled_from(["eq", "in", "exists", "not_exists"]))
            condition = {"field": field, "op": op}
            if op in ("eq", "in"):
                condition["value"] = draw(_one_or_list(form_refs, op))
            return condition
        if field.endswith("_at"):
            ops = ["before", "after", "within_last_days"]
            if field != "created_at":
                ops += ["exists", "not_exists"]
            op = draw(st.sampled_from(ops))
            condition = {"field": field, "op": op}
            if op == "within_last_days":
                condition["value"] = draw(st.sampled_from([1, 7, 30]))
            elif op in ("before", "after"):
                condition["value"] = draw(datetimes)
            return condition
        if field.endswith("_count"):
            op = draw(st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte"]))
            return {"field": field, "op": op, "value": draw(st.integers(0, 4))}
        if field == "campaign":
            op = draw(st.sampled_from(["opened", "clicked", "received"]))
            return {"field": field, "op": op, "value": draw(campaign_ids)}
        op = draw(st.sampled_from(["none_opened", "none_clicked"]))
        return {"field": field, "op": op, "value": draw(st.sampled_from([1, 1, 2, 3, 5]))}

    return condition()


def trees(world: World, depth: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    leaf = conditions(world)
    if depth >= 4:
        return leaf
    inner = trees(world, depth + 1)
    return st.one_of(
        leaf,
        st.lists(inner, max_size=3).map(lambda rules: {"all": rules}),
        st.lists(inner, max_size=3).map(lambda rules: {"any": rules}),
        inner.map(lambda rule: {"not": rule}),
    )


# -- the property ----------------------------------------------------------------------------


def _insert(world: World, people: list[dict[str, Any]]) -> dict[int, SubscriberSnapshot]:
    session = world.session
    rows = []
    for i, p in enumerate(people):
        form = world.forms[p["form"]] if p["form"] is not None else None
        subscriber = Subscriber(
            email=f"{p['local']}{i}@{p['domain']}",
            locale=p["locale"],
            status=p["status"],
            attributes=p["attributes"],
            source_form_id=form.id if form else None,
            created_at=p["created_at"],
            confirmed_at=p["confirmed_at"],
            last_open_at=p["last_open_at"],
            last_click_at=p["last_click_at"],
            open_count=p["open_count"],
            click_count=p["click_count"],
            bounce_count=p["bounce_count"],
        )
        session.add(subscriber)
        session.flush()
        deliveries = []
        for campaign, d in p["deliveries"].items():
            delivery = Delivery(
                campaign_id=world.campaigns[campaign].id, subscriber_id=subscriber.id, **d
            )
            session.add(delivery)
            deliveries.append(delivery)
        for topic, status in p["subscriptions"].items():
            session.add(
                Subscription(
                    subscriber_id=subscriber.id, topic_id=world.topics[topic].id, status=status
                )
            )
        session.flush()
        rows.append((subscriber, p, form, deliveries))
    session.commit()
    return {
        subscriber.id: SubscriberSnapshot(
            email=subscriber.email,
            created_at=p["created_at"],
            locale=p["locale"],
            status=p["status"],
            attributes=p["attributes"],
            source_form_id=form.id if form else None,
            source_form_slug=form.slug if form else None,
            confirmed_at=p["confirmed_at"],
            last_open_at=p["last_open_at"],
            last_click_at=p["last_click_at"],
            open_count=p["open_count"],
            click_count=p["click_count"],
            bounce_count=p["bounce_count"],
            subscriptions=tuple(
                SubscriptionFact(world.topics[t].id, world.topics[t].slug, status)
                for t, status in p["subscriptions"].items()
            ),
            deliveries=tuple(
                DeliveryFact(
                    d.id,
                    d.campaign_id,
                    DeliveryStatus(d.status).value,
                    d.sent_at,
                    d.opened_at,
                    d.clicked_at,
                )
                for d in deliveries
            ),
        )
        for subscriber, p, form, deliveries in rows
    }


def _clear(world: World) -> None:
    session = world.session
    session.rollback()
    for model in (Delivery, Subscription, Subscriber):
        session.execute(delete(model))
    session.commit()


def _subtrees(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """The tree and every rule inside it, outermost first."""
    found = [tree]
    for group in ("all", "any"):
        for child in tree.get(group, []):
            found += _subtrees(child)
    if "not" in tree:
        found += _subtrees(tree["not"])
    return found


def test_compiled_sql_selects_exactly_whom_the_evaluator_selects(session):
    world = World(session)
    seen = {"members": 0, "rules": 0}

    @settings(max_examples=100, deadline=None, database=None)
    @given(
        people=st.lists(subscribers(world), min_size=1, max_size=10),
        rule_trees=st.lists(trees(world), min_size=1, max_size=4),
        leaves=st.lists(conditions(world), min_size=4, max_size=12),
    )
    def check(
        people: list[dict[str, Any]],
        rule_trees: list[dict[str, Any]],
        leaves: list[dict[str, Any]],
    ) -> None:
        try:
            snapshots = _insert(world, people)
            for tree in rule_trees:
                expected = {i for i, snap in snapshots.items() if matches(tree, snap, NOW)}
                assert set(session.scalars(member_ids(tree, NOW))) == expected, tree
                assert service.count(session, tree, now=NOW) == len(expected)
            # Then every rule inside the trees, and many single conditions and their negations,
            # each as a column of one query: a condition that an outer all/any hides is still
            # checked, and none may ever be NULL (or `not` would lie).
            rules = [rule for tree in rule_trees for rule in _subtrees(tree)]
            rules += leaves + [{"not": leaf} for leaf in leaves]
            columns = [where(rule, NOW).label(f"r{i}") for i, rule in enumerate(rules)]
            for row in session.execute(select(Subscriber.id, *columns)):
                got = [None if v is None else bool(v) for v in row[1:]]
                want = [matches(rule, snapshots[row[0]], NOW) for rule in rules]
                wrong = [(r, g) for r, g, w in zip(rules, got, want, strict=True) if g != w]
                assert not wrong, (wrong, snapshots[row[0]])
                seen["members"] += sum(want)
                seen["rules"] += len(rules)
        finally:
            _clear(world)

    check()
    # The pools are meant to make rules hit: a run where nothing ever matched proves little.
    assert seen["members"] > seen["rules"] / 5


def test_normalised_trees_validate_to_themselves(session):
    world = World(session)

    @settings(max_examples=200, deadline=None, database=None)
    @given(tree=trees(world))
    def check(tree: dict[str, Any]) -> None:
        normal = validate_tree(tree)
        assert validate_tree(normal) == normal

    check()


def test_deliveries_of_erased_subscribers_count_for_no_one(world, session):
    """An erased person's deliveries stay with subscriber_id NULL; no rule may pick them up."""
    ann = world.subscriber(
        "ann@example.org", deliveries=[{"campaign": 0, "status": "sent", "sent_at": NOW}]
    )
    ghost = world.subscriber(
        "ghost@example.org", deliveries=[{"campaign": 1, "status": "sent", "sent_at": NOW}]
    )
    session.execute(delete(Subscriber).where(Subscriber.id == ghost.id))
    session.commit()
    assert session.scalar(select(func.count()).select_from(Delivery)) == 2
    tree = {"field": "recent_campaigns", "op": "none_opened", "value": 3}
    assert set(session.scalars(member_ids(tree, NOW))) == {ann.id}
