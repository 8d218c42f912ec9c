"""Jobs are enqueued by dotted path; every path must resolve, and lost jobs are recovered."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from sqlalchemy import update

from mailer import tasks
from mailer.database import utcnow
from mailer.delivery.models import MessageStatus, OutboundMessage
from mailer.extensions import jobs


@pytest.mark.parametrize("path", tasks.ALL_JOBS)
def test_every_job_path_resolves(path):
    module, _, name = path.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_a_job_lost_with_redis_data_is_sent_by_the_requeue_sweep(app, client, session, work, inbox):
    from tests import signups
    from tests.factories import make_form

    make_form(session)
    client.post(
        "/subscribe/news",
        json={"email": "ann@example.com", "consent": True},
        headers={"Origin": "https://shop.example"},
    )
    signups.drain(app)  # the sign-up is written and its email queued
    with app.app_context():
        jobs.redis.flushdb()  # Redis lost its data before a worker took the job
    assert work() == 0 and inbox.messages() == []

    session.execute(update(OutboundMessage).values(created_at=utcnow() - timedelta(hours=1)))
    session.commit()
    with app.app_context():
        tasks.enqueue(tasks.REQUEUE_PENDING)
    work()  # the sweep re-enqueues ...
    work()  # ... and the send runs
    assert inbox.only()["Subject"] == "Please confirm your subscription"
    session.expire_all()
    assert session.get(OutboundMessage, 1).status is MessageStatus.SENT


def test_cron_schedules_the_sweep_and_the_daily_anchor_on_our_queue(app):
    from workers import cron

    scheduler = cron.scheduler(app)
    timing = {j.func_name: (j.interval, j.cron, j.queue_name) for j in scheduler.get_jobs()}
    assert timing == {
        "workers.jobs.requeue_pending_messages": (300, None, "mailer"),
        "workers.jobs.anchor_ledger": (None, "5 0 * * *", "mailer"),
        "workers.jobs.flush_tracking": (5, None, "mailer"),
        "workers.jobs.drain_signups": (2, None, "mailer"),
        "workers.jobs.sweep_campaigns": (30, None, "mailer"),
        "workers.jobs.apply_retention": (None, "30 3 * * *", "mailer"),
        "workers.jobs.purge_exports": (None, "15 * * * *", "mailer"),
        "workers.jobs.purge_compilations": (None, "45 3 * * *", "mailer"),
    }
    with app.app_context():
        enqueued = scheduler.enqueue_jobs()
        assert sorted(job.func_name for job in enqueued) == [
            "workers.jobs.drain_signups",
            "workers.jobs.flush_tracking",
            "workers.jobs.requeue_pending_messages",
            "workers.jobs.sweep_campaigns",
        ]
        assert jobs.queue.count == 4
