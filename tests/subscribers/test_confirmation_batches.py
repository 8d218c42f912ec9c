"""A burst of sign-ups is mailed by a few RQ jobs, not one per email, and an SMTP outage
still gives each email its own retries."""

from __future__ import annotations

import threading

from aiosmtpd.controller import Controller
from rq import SimpleWorker
from sqlalchemy import select

from mailer import tasks
from mailer.delivery.models import MessageKind, MessageStatus, OutboundMessage, Suppression
from mailer.extensions import jobs
from mailer.subscribers import notices
from mailer.subscribers.models import Subscriber
from tests import signups
from tests.conftest import SMTP_PORTS
from tests.factories import make_form
from tests.services import free_port

ORIGIN = {"Origin": "https://shop.example"}


def _sign_up(client, n: int) -> None:
    for i in range(n):
        response = client.post(
            "/subscribe/news",
            json={"email": f"reader{i}@example.org", "consent": True},
            headers=ORIGIN,
            environ_base={"REMOTE_ADDR": f"10.1.{i // 200}.{i % 200}"},
        )
        assert response.status_code == 202


def _send_jobs(app) -> list[tuple[str, tuple]]:
    with app.app_context():
        return [
            (job.func_name, job.args)
            for job in jobs.queue.get_jobs()
            if job.func_name in (tasks.SEND_MESSAGE, tasks.SEND_MESSAGES)
        ]


def test_a_burst_of_sign_ups_is_mailed_by_a_job_per_fifty(app, client, session, work, inbox):
    make_form(session)
    _sign_up(client, 120)
    assert signups.drain(app) == 120
    queued = _send_jobs(app)
    assert [(name, len(args[0])) for name, args in queued] == [
        (tasks.SEND_MESSAGES, 50),
        (tasks.SEND_MESSAGES, 50),
        (tasks.SEND_MESSAGES, 20),
    ]
    work()
    received = [m["To"].addresses[0].addr_spec for m in inbox.messages()]
    assert sorted(received) == sorted(f"reader{i}@example.org" for i in range(120))
    assert {m["Subject"] for m in inbox.messages()} == {"Please confirm your subscription"}
    session.expire_all()
    statuses = set(session.scalars(select(OutboundMessage.status)))
    assert statuses == {MessageStatus.SENT}


def test_a_lone_sign_up_keeps_its_own_job(app, client, session):
    make_form(session)
    _sign_up(client, 1)
    signups.drain(app)
    assert _send_jobs(app) == [(tasks.SEND_MESSAGE, (1,))]


def test_with_the_smtp_server_down_each_email_of_a_batch_retries_on_its_own(
    make_settings, make_app, session, client
):
    down = make_app(make_settings(MAILER_SMTP_URL=f"smtp://127.0.0.1:{free_port()}"))
    make_form(session)
    _sign_up(client, 3)
    signups.drain(down)
    assert [name for name, _ in _send_jobs(down)] == [tasks.SEND_MESSAGES]
    with down.app_context():  # a real worker runs the batch: every send fails for now
        SimpleWorker(jobs.queues, connection=jobs.redis).work(burst=True, with_scheduler=False)
        scheduled = jobs.queue.scheduled_job_registry.get_job_ids()
        failed = jobs.queue.failed_job_registry.count
        retried = sorted(jobs.queue.fetch_job(j).args[0] for j in scheduled)
    session.expire_all()
    messages = session.scalars(select(OutboundMessage)).all()
    # Nothing lost: each is pending with the reason, and has a send_message job of its own
    # waiting for RQ's scheduler, with the usual back-off from there.
    assert [(m.kind, m.status) for m in messages] == [
        (MessageKind.CONFIRMATION, MessageStatus.PENDING)
    ] * 3
    assert all(m.error for m in messages)
    assert failed == 0
    assert retried == sorted(m.id for m in messages)


class _CountingServer:
    """An SMTP server that counts connections (EHLOs) and refuses one mailbox for good."""

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.connections = 0
        self.received: list[str] = []
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == self.refused:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.extend(envelope.rcpt_tos)
        return "250 Message accepted"


def test_a_batch_of_confirmations_is_sent_over_one_connection(
    make_settings, make_app, session, client
):
    server = _CountingServer(refused="reader7@example.org")
    controller = Controller(server, hostname="127.0.0.1", port=free_port())
    controller.start()
    SMTP_PORTS.add(controller.port)
    try:
        app = make_app(make_settings(MAILER_SMTP_URL=f"smtp://127.0.0.1:{controller.port}"))
        make_form(session)
        _sign_up(client, 60)
        assert signups.drain(app) == 60
        assert [len(args[0]) for _name, args in _send_jobs(app)] == [50, 10]
        with app.app_context():
            SimpleWorker(jobs.queues, connection=jobs.redis).work(burst=True, with_scheduler=False)
    finally:
        controller.stop()
    # One connection a job; the refusal did not cost the others theirs.
    assert server.connections == 2
    assert sorted(server.received) == sorted(f"reader{i}@example.org" for i in range(60) if i != 7)
    session.expire_all()
    rows = session.execute(
        select(Subscriber.email, OutboundMessage.status).join(
            Subscriber, Subscriber.id == OutboundMessage.subscriber_id
        )
    )
    by_address = dict(rows.all())
    assert by_address.pop("reader7@example.org") is MessageStatus.FAILED
    assert set(by_address.values()) == {MessageStatus.SENT}
    assert session.scalar(select(Suppression.reason)).value == "hard_bounce"


def test_an_email_another_worker_sent_after_the_batch_was_read_goes_out_once(
    app, client, session, inbox
):
    make_form(session)
    _sign_up(client, 5)
    signups.drain(app)
    ids = list(session.scalars(select(OutboundMessage.id).order_by(OutboundMessage.id)))
    ctx = app.extensions["mailer.delivery"]
    with app.app_context(), app.extensions["mailer.db"]() as worker, ctx.sender.one_connection():
        batch = notices.Batch.load(worker, ids)
        # A re-enqueued single job on another worker takes the third email first.
        with app.extensions["mailer.db"]() as other:
            assert notices.send(other, ids[2], ctx.sender, ctx.links) is MessageStatus.SENT
        outcomes = [notices.send(worker, i, ctx.sender, ctx.links, batch=batch) for i in ids]
        notices.finish_batch(worker)
    assert outcomes == [MessageStatus.SENT] * 2 + [None] + [MessageStatus.SENT] * 2
    received = sorted(m["To"].addresses[0].addr_spec for m in inbox.messages())
    assert received == sorted(f"reader{i}@example.org" for i in range(5))
    session.expire_all()
    rows = session.execute(select(OutboundMessage.status, OutboundMessage.attempts)).all()
    assert set(rows) == {(MessageStatus.SENT, 1)}
