"""Shared expectations of the public-endpoint tests."""

from __future__ import annotations

from sqlalchemy import func, select

from mailer.consent.models import ConsentEvent
from mailer.delivery.models import OutboundMessage
from mailer.subscribers.models import Subscriber
from tests import signups


def counts(session) -> tuple[int, int, int]:
    """Subscribers, consent events and outbound messages in the database."""
    session.expire_all()
    return tuple(
        session.scalar(select(func.count()).select_from(model))
        for model in (Subscriber, ConsentEvent, OutboundMessage)
    )


def nothing_written(app, session, work, inbox) -> None:
    """A refused request leaves nothing behind: nothing accepted into the sign-up intake, no
    row once the workers drained it, and, once the worker ran, no mail."""
    assert signups.waiting(app) == 0, "a refused request must not be accepted"
    signups.drain(app)
    assert counts(session) == (0, 0, 0), "a refused request must not write anything"
    work()
    assert inbox.messages() == [], "a refused request must not send anything"
