"""Saving segments, and counting and sampling their members."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailer.segments import service
from mailer.segments.models import Segment
from mailer.segments.rules import RulesError
from tests.segments.conftest import NOW

PRO = {"field": "attribute", "key": "plan", "type": "string", "op": "eq", "value": "pro"}


def test_a_segment_is_saved_with_its_rules_in_normal_form(world, session):
    rules = {
        "all": [PRO, {"field": "created_at", "op": "after", "value": "2025-01-01T01:00:00+01:00"}]
    }
    segment = service.create(session, "  Pro customers ", rules)
    session.expire_all()
    stored = session.get(Segment, segment.id)
    assert stored.name == "Pro customers"
    assert stored.rules["all"][1]["value"] == "2025-01-01T00:00:00+00:00"


def test_names_are_unique(world, session):
    service.create(session, "Pro", PRO)
    with pytest.raises(service.SegmentError) as caught:
        service.create(session, "Pro", PRO)
    assert caught.value.errors == {"name": ["A segment with this name exists."]}
    other = service.create(session, "Other", PRO)
    with pytest.raises(service.SegmentError):
        service.update(session, other.id, name="Pro")
    assert service.update(session, other.id, name="Other").name == "Other"  # its own name: fine


def test_rules_naming_what_does_not_exist_are_refused_with_the_path(world, session):
    rules = {
        "all": [
            {"field": "topic", "topic": "newz", "op": "eq", "value": "active"},
            {"field": "form", "op": "in", "value": ["home", 999]},
            {"not": {"field": "campaign", "op": "opened", "value": world.campaigns[0].id}},
        ]
    }
    with pytest.raises(service.SegmentError) as caught:
        service.create(session, "Typo", rules)
    assert set(caught.value.errors) == {"rules.all.0.topic", "rules.all.1.value.1"}
    assert session.query(Segment).count() == 0


def test_invalid_rules_are_refused_with_the_path(world, session):
    with pytest.raises(service.SegmentError) as caught:
        service.create(session, "Bad", {"any": [PRO, {"field": "email", "op": "like"}]})
    assert list(caught.value.errors) == ["rules.any.1.op"]
    with pytest.raises(RulesError):
        service.count(session, {"any": [{"field": "email"}]})


def test_update_replaces_rules_and_a_missing_segment_is_not_found(world, session):
    segment = service.create(session, "Pro", PRO)
    updated = service.update(session, segment.id, rules={"not": PRO})
    assert updated.rules == {"not": PRO}
    with pytest.raises(service.SegmentNotFound):
        service.get(session, segment.id + 1)
    with pytest.raises(service.SegmentNotFound):
        service.get(session, 10**20)  # larger than any id column: not found, not a crash


def test_count_and_sample_at_a_given_moment(world, session):
    for i in range(25):
        world.subscriber(
            f"p{i}@example.org",
            name=f"P {i}",
            attributes={"plan": "pro" if i % 2 == 0 else "free"},
            created_at=NOW - timedelta(days=i),
        )
    assert service.count(session, PRO, now=NOW) == 13
    recent = {"all": [PRO, {"field": "created_at", "op": "within_last_days", "value": 10}]}
    assert service.count(session, recent, now=NOW) == 6  # days 0, 2, ..., 10
    assert service.count(session, recent, now=NOW + timedelta(days=5)) == 3  # days 0, 2 and 4

    sample = service.sample(session, PRO, limit=5, now=NOW)
    assert [s.email for s in sample] == [f"p{i}@example.org" for i in (24, 22, 20, 18, 16)]
