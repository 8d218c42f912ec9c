"""SMTP failures: permanent ones fail and suppress, temporary ones are retried."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller
from rq import SimpleWorker
from sqlalchemy import func, select, update

from mailer.consent.models import ConsentEvent
from mailer.delivery import suppressions, transport
from mailer.delivery.models import MessageStatus, OutboundMessage, Suppression
from mailer.extensions import db, jobs
from mailer.pseudonyms import keyed
from mailer.subscribers.models import Subscriber
from tests import signups
from tests.conftest import SMTP_PORTS
from tests.factories import make_form
from tests.services import free_port


class Refusing:
    """A real SMTP server that refuses some recipients: 550 for bounce@, 451 for later@."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bounce@"):
            return f"550 5.1.1 <{address}>: No such user"
        if address.startswith("later@"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


@pytest.fixture
def refusing_smtp():
    port = free_port()
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    SMTP_PORTS.add(port)
    yield port
    controller.stop()


def test_url_parsing_and_no_password_in_repr():
    target = transport.SmtpTarget.from_url("smtp://user%40x:s3cr%2Ft@mail.example:587?starttls=1")
    assert (target.host, target.port, target.username, target.password, target.starttls) == (
        "mail.example",
        587,
        "user@x",
        "s3cr/t",
        True,
    )
    assert "s3cr" not in repr(target)
    assert transport.SmtpTarget.from_url("smtps://mail.example").port == 465
    with pytest.raises(ValueError, match="smtp://"):
        transport.SmtpTarget.from_url("http://mail.example")


def test_classification(refusing_smtp):
    target = transport.SmtpTarget.from_url(f"smtp://127.0.0.1:{refusing_smtp}")
    with pytest.raises(transport.SendError) as hard:
        transport.send(target, "a@example.org", "bounce@example.com", b"Subject: x\r\n\r\nx\r\n")
    assert hard.value.permanent and hard.value.code == 550
    with pytest.raises(transport.SendError) as soft:
        transport.send(target, "a@example.org", "later@example.com", b"Subject: x\r\n\r\nx\r\n")
    assert not soft.value.permanent and soft.value.code == 451
    closed = transport.SmtpTarget.from_url(f"smtp://127.0.0.1:{free_port()}")
    SMTP_PORTS.add(closed.port)
    with pytest.raises(transport.SendError) as down:
        transport.send(closed, "a@example.org", "ann@example.com", b"x")
    assert not down.value.permanent


def _signup(client, email):
    return client.post(
        "/subscribe/news",
        json={"email": email, "consent": True},
        headers={"Origin": "https://shop.example"},
    )


def test_permanent_refusal_fails_the_message_and_suppresses(make_settings, make_app, refusing_smtp):
    app = make_app(make_settings(MAILER_SMTP_URL=f"smtp://127.0.0.1:{refusing_smtp}"))
    client = app.test_client()
    with app.app_context():
        make_form(db.session)
        assert _signup(client, "bounce@example.com").status_code == 202
        signups.drain(app)
        SimpleWorker([jobs.queue], connection=jobs.redis).work(burst=True)
        session = db.session  # closed with the app context
        session.expire_all()
        message = session.scalar(select(OutboundMessage))
        assert message.status is MessageStatus.FAILED and "550" in message.error
        row = session.scalar(select(Suppression))
        # Known by its keyed HMAC only; the SMTP reply kept as detail, address scrubbed.
        assert row.email_hmac == keyed(session, "bounce@example.com")
        assert suppressions.is_blocked(session, "bounce@example.com")
        assert "bounce@example.com" not in row.detail
        # A new sign-up of a suppressed address is recorded but mails nothing.
        session.execute(update(Subscriber).values(confirmation_sent_at=None))
        session.commit()
        assert _signup(client, "bounce@example.com").status_code == 202
        signups.drain(app)
        session.expire_all()
        assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 1
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 2


def test_temporary_refusal_is_retried_later(make_settings, make_app, refusing_smtp):
    app = make_app(make_settings(MAILER_SMTP_URL=f"smtp://127.0.0.1:{refusing_smtp}"))
    client = app.test_client()
    with app.app_context():
        make_form(db.session)
        _signup(client, "later@example.com")
        signups.drain(app)
        SimpleWorker([jobs.queue], connection=jobs.redis).work(burst=True)
        session = db.session  # closed with the app context
        session.expire_all()
        message = session.scalar(select(OutboundMessage))
        assert message.status is MessageStatus.PENDING and "451" in message.error
        assert message.attempts == 1
        assert session.scalar(select(Suppression.id)) is None
        # RQ holds the job for a retry with back-off.
        assert jobs.queue.scheduled_job_registry.count == 1
