"""Sign-ups are accepted into a Redis stream and written by the workers: how tests get them
written. `POST /subscribe/...` writes nothing to the database; `drain(app)` then runs the drain
job exactly as a worker does (`workers.jobs.drain_signups`, in the app's context), which writes
every accepted sign-up and queues its email; the `work` fixture then sends the email through a
real RQ worker. (The request also kicks a drain job onto the queue, at most one per window:
`work()` alone runs it, but a test must not depend on the kick window, so it drains first.)
"""

from __future__ import annotations

from flask import Flask

from mailer.extensions import jobs
from mailer.subscribers import intake
from workers.jobs import drain_signups


def drain(app: Flask) -> int:
    """Write every sign-up waiting in the intake; returns how many were written."""
    with app.app_context():
        return drain_signups()


def waiting(app: Flask) -> int:
    """Sign-ups accepted and not written yet."""
    with app.app_context():
        return intake.waiting(jobs.redis)
