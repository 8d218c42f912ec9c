"""`mailer cron`: RQ's cron scheduler, enqueueing the periodic jobs. Run one per deployment
(more are harmless: every periodic job is safe to run twice)."""

from __future__ import annotations

from flask import Flask
from rq.cron import CronScheduler

from mailer.extensions import QUEUE_NAME, jobs
from workers import jobs as job_functions

# (job, seconds between runs or a cron expression in UTC)
PERIODIC = (
    (job_functions.requeue_pending_messages, 300),
    (job_functions.anchor_ledger, "5 0 * * *"),  # daily, just after midnight UTC
    (job_functions.flush_tracking, 5),  # opens and clicks from Redis into profiles
    (job_functions.drain_signups, 2),  # sign-ups from Redis (requests kick it sooner)
    (job_functions.apply_retention, "30 3 * * *"),  # daily purge of what we may not keep
    (job_functions.purge_exports, "15 * * * *"),  # hourly: export files past their expiry
    (job_functions.purge_compilations, "45 3 * * *"),  # daily: compiled MJML no longer used
)


def scheduler(app: Flask) -> CronScheduler:
    with app.app_context():
        cron = CronScheduler(connection=jobs.redis)
    sweep = app.config["MAILER"].campaign_sweep_seconds
    for func, when in (*PERIODIC, (job_functions.sweep_campaigns, sweep)):
        # A run still waiting when the next is due is dropped (RQ's queued-job ttl): on a busy
        # worker, frequent runs would otherwise pile up in the first queue and starve the
        # campaign queue behind it. Every periodic job catches up on its next run.
        if isinstance(when, int):
            timing = {"interval": when, "ttl": max(when, 1)}
        else:
            timing = {"cron": when, "ttl": 3600}
        cron.register(func, QUEUE_NAME, job_timeout=300, **timing)
    return cron


def run(app: Flask) -> None:
    scheduler(app).start()
