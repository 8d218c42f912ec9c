"""A burst of sign-ups is mailed by a few RQ jobs, not one per email, and an SMTP outage
still gives each email its own retries."""

from __future__ import annotations

from rq import SimpleWorker
from sqlalchemy import select

from mailer import tasks
from mailer.delivery.models import MessageKind, MessageStatus, OutboundMessage
from mailer.extensions import jobs
from tests import signups
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
