"""`mailer worker`: an RQ worker with the scheduler (retries, delayed jobs) on our queue."""

from __future__ import annotations

import logging

from flask import Flask
from rq import Worker

from mailer.extensions import jobs


def run(app: Flask, burst: bool = False) -> bool:
    """Work until stopped (or, with `burst`, until the queue is empty)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with app.app_context():
        worker = Worker(jobs.queues, connection=jobs.redis)
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
