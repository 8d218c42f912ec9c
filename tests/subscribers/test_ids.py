"""Ids travel in signed links: a deleted subscriber's id is never handed to someone else."""

from __future__ import annotations

from sqlalchemy import delete

from mailer.subscribers.models import Subscriber


def test_ids_are_not_reused_after_a_deletion(session):
    first = Subscriber(email="first@example.com", locale="en", attributes={})
    session.add(first)
    session.commit()
    first_id = first.id
    session.execute(delete(Subscriber).where(Subscriber.id == first_id))
    session.commit()
    second = Subscriber(email="second@example.com", locale="en", attributes={})
    session.add(second)
    session.commit()
    assert second.id != first_id
