"""Erasure: no trace of the address anywhere, the proof of consent intact and verifiable."""

from __future__ import annotations

import pytest
from sqlalchemy import String, Text, inspect, select

from mailer.compliance import erasure
from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.delivery.models import Suppression, SuppressionReason
from mailer.models import Base
from mailer.subscribers.models import Subscriber, SubscriptionStatus
from tests import signups
from tests.compliance.subjects import EMAIL, ORIGIN, subscribed


def _every_text_value(session) -> list[tuple[str, str, str]]:
    """(table, column, value) for every text column of every table."""
    found = []
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, String | Text)]
        for row in session.execute(select(*columns)) if columns else []:
            for column, value in zip(columns, row, strict=True):
                if value is not None:
                    found.append((table.name, column.name, str(value)))
    return found


def test_erasure_leaves_no_trace_and_the_proof_verifies(client, session, work, inbox):
    subscribed(client, session, work, inbox)
    assert any(EMAIL in v for _, _, v in _every_text_value(session))
    result = erasure.erase(session, EMAIL.upper(), actor="dpo@example.org")
    assert result.withdrawn == ["news"]
    session.expire_all()

    leftovers = [
        (t, c)
        for t, c, v in _every_text_value(session)
        if EMAIL in v.lower() or "erin.eraseme" in v.lower() or "ErinBrowser" in v
    ]
    assert leftovers == [], f"personal data left in {leftovers}"
    assert session.scalar(select(Subscriber)) is None

    events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    assert [e.type for e in events] == [
        ConsentEventType.REQUESTED,
        ConsentEventType.CONFIRMED,
        ConsentEventType.WITHDRAWN,
        ConsentEventType.ERASED,
    ]
    assert len({e.subject_hmac for e in events}) == 1  # still one (pseudonymous) person
    assert events[-1].actor == "dpo@example.org" and events[-1].lawful_basis == "legal_claims"
    assert all(e.email is None and e.ip is None and e.user_agent is None for e in events)
    assert events[0].consent_text_sha256 is not None  # what they agreed to is still proven
    report = chain.verify(session)
    assert report.ok, report.problem
    (entry,) = session.scalars(select(Suppression)).all()
    assert entry.reason is SuppressionReason.ERASED


def test_signing_up_again_after_erasure_starts_fresh(client, session, work, inbox):
    subscribed(client, session, work, inbox)
    erasure.erase(session, EMAIL, actor="dpo@example.org")
    inbox.clear()
    response = client.post(
        "/subscribe/news", json={"email": EMAIL, "consent": True}, headers=ORIGIN
    )
    assert response.status_code == 202
    signups.drain(client.application)
    work()
    assert inbox.only()["Subject"] == "Please confirm your subscription"
    session.expire_all()
    again = session.scalar(select(Subscriber))
    assert [s.status for s in again.subscriptions] == [SubscriptionStatus.PENDING]
    assert chain.verify(session).ok


def test_an_unknown_address_is_nothing_to_erase(session):
    with pytest.raises(erasure.NothingToErase):
        erasure.erase(session, "nobody@example.com", actor="dpo@example.org")


def test_every_table_was_searched(session):
    """The search above must cover the tables that can hold an address."""
    names = set(inspect(session.get_bind()).get_table_names())
    assert {"subscribers", "consent_events", "outbound_messages", "suppressions", "users"} <= names
