"""RQ jobs: ids in, one service call out. They run inside the app context the worker pushed."""

from __future__ import annotations

from flask import current_app
from rq import get_current_job

from mailer import tasks
from mailer.consent import chain
from mailer.extensions import db
from mailer.subscribers import notices


def send_message(message_id: int) -> str | None:
    """Send one system email; rerunning is safe (see `notices.send`)."""
    ctx = current_app.extensions["mailer.delivery"]
    job = get_current_job()
    final = job is None or not job.retries_left
    with db.sessionmaker() as session:
        result = notices.send(session, message_id, ctx.sender, ctx.links, final_attempt=final)
    return result.value if result else None


def requeue_pending_messages() -> int:
    """Re-enqueue system emails whose job was lost. Safe to run any time."""
    with db.sessionmaker() as session:
        ids = notices.recover_lost(session)
    for message_id in ids:
        tasks.enqueue(tasks.SEND_MESSAGE, message_id)
    return len(ids)


def anchor_ledger() -> int:
    """Write the ledger head down with a timestamp (daily). Safe to rerun: one more anchor."""
    with db.sessionmaker() as session:
        return chain.record_anchor(session).seq
