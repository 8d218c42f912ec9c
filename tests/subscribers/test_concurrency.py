"""Two of the same thing at the same moment: one event, one email."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from mailer.consent.ledger import Visit
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.delivery.models import MessageKind, MessageStatus, OutboundMessage
from mailer.extensions import db
from mailer.subscribers import confirmation, notices, preferences
from tests import signups
from tests.factories import make_form

ORIGIN = {"Origin": "https://shop.example"}


def _at_once(app, n, action):
    """Run `action(session)` in n threads released together; return their exceptions."""
    barrier, errors = threading.Barrier(n), []

    def run():
        try:
            with app.app_context(), db.sessionmaker() as own:
                barrier.wait(timeout=30)
                action(own)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def _pending_signup(client, session, welcome=True):
    make_form(session, welcome=welcome)
    client.post(
        "/subscribe/news", json={"email": "ann@example.com", "consent": True}, headers=ORIGIN
    )
    signups.drain(client.application)
    return session.scalar(select(OutboundMessage.id))


def _count(session, type_):
    session.expire_all()
    return session.scalar(
        select(func.count()).select_from(ConsentEvent).where(ConsentEvent.type == type_)
    )


def test_four_confirms_at_once_write_one_event_and_one_welcome(app, client, session):
    message_id = _pending_signup(client, session)
    errors = _at_once(app, 4, lambda s: confirmation.confirm(s, message_id, Visit(), "localhost"))
    assert errors == []
    assert _count(session, ConsentEventType.CONFIRMED) == 1
    welcomes = session.scalar(
        select(func.count())
        .select_from(OutboundMessage)
        .where(OutboundMessage.kind == MessageKind.WELCOME)
    )
    assert welcomes == 1


def test_four_unsubscribes_at_once_write_one_withdrawal(app, client, session):
    message_id = _pending_signup(client, session, welcome=False)
    confirmation.confirm(session, message_id, Visit(), "localhost")
    subscriber_id = session.scalar(select(OutboundMessage.subscriber_id))
    errors = _at_once(
        app,
        4,
        lambda s: preferences.withdraw(s, subscriber_id, None, ConsentSource.UNSUBSCRIBE, Visit()),
    )
    assert errors == []
    assert _count(session, ConsentEventType.WITHDRAWN) == 1


def test_the_same_email_sent_by_three_workers_at_once_goes_out_once(app, client, session, inbox):
    message_id = _pending_signup(client, session)
    ctx = app.extensions["mailer.delivery"]
    errors = _at_once(app, 3, lambda s: notices.send(s, message_id, ctx.sender, ctx.links))
    assert errors == []
    assert len(inbox.messages()) == 1
    session.expire_all()
    message = session.get(OutboundMessage, message_id)
    assert message.status is MessageStatus.SENT and message.attempts == 1


def test_a_failure_outside_smtp_is_counted_and_ends(app, client, session, inbox, monkeypatch):
    message_id = _pending_signup(client, session)
    ctx = app.extensions["mailer.delivery"]

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(notices.rendering, "render", broken)
    with app.app_context():
        with pytest.raises(RuntimeError):
            notices.send(session, message_id, ctx.sender, ctx.links)
        session.expire_all()
        message = session.get(OutboundMessage, message_id)
        assert (message.status, message.attempts) == (MessageStatus.PENDING, 1)
        assert "template exploded" in message.error
        with pytest.raises(RuntimeError):
            notices.send(session, message_id, ctx.sender, ctx.links, final_attempt=True)
        session.expire_all()
        message = session.get(OutboundMessage, message_id)
        assert (message.status, message.attempts) == (MessageStatus.FAILED, 2)
    assert notices.recover_lost(session) == []
    assert inbox.messages() == []
