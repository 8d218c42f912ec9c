"""`mailer cron`: RQ's cron scheduler, enqueueing the periodic jobs. Run one per deployment
(more are harmless: every periodic job is safe to run twice)."""

from __future__ import annotations

from flask import Flask
from rq.cron import CronScheduler

from mailer.extensions import QUEUE_NAME, jobs
from workers import jobs as job_functions

# (job, seconds between runs)
PERIODIC = ((job_functions.requeue_pending_messages, 300),)


def scheduler(app: Flask) -> CronScheduler:
    with app.app_context():
        cron = CronScheduler(connection=jobs.redis)
    for func, interval in PERIODIC:
        cron.register(func, QUEUE_NAME, interval=interval, job_timeout=300)
    return cron


def run(app: Flask) -> None:
    scheduler(app).start()
