"""Helpers for two senders racing on one campaign: stop a real worker mid-page (SIGSTOP) at a
moment it holds no database lock, see which deliveries it holds, read who ended where.

A worker frozen inside a transaction would hold row locks (PostgreSQL) or the write lock
(SQLite) and the other worker would wait for it instead of taking its page over; that is a
different fault (a hung database client). `freeze_holding_a_page` therefore only keeps a stop
that landed between two statements, with a page claimed and not yet sent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from mailer.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from mailer.subscribers.models import Subscriber
from tests.campaigns.processes import descendants

OPEN = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
FINAL = {
    DeliveryStatus.SENT,
    DeliveryStatus.UNKNOWN,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
}


def _signal(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """The worker and the work horse RQ forked for its job (the horse does the sending)."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def freeze(proc: subprocess.Popen) -> None:
    _signal(proc, signal.SIGSTOP)


def thaw(proc: subprocess.Popen) -> None:
    _signal(proc, signal.SIGCONT)


def _locked(app: Flask, campaign_id: int) -> bool:
    """Does someone hold a lock a sender would need on this campaign's open deliveries?"""
    with app.extensions["mailer.db"]() as session:
        bind = session.get_bind()
        if bind.dialect.name == "sqlite":
            # WAL: readers never block; a writer in a transaction holds the RESERVED lock.
            probe = sqlite3.connect(bind.url.database, timeout=0.2, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                return False
            except sqlite3.OperationalError:
                return True
            finally:
                probe.close()
        try:
            session.execute(
                select(Delivery.id)
                .where(Delivery.campaign_id == campaign_id, Delivery.status.in_(OPEN))
                .with_for_update(nowait=True)
            ).all()
            return False
        except OperationalError:
            return True
        finally:
            session.rollback()


def held(app: Flask, campaign_id: int) -> dict[int, tuple[DeliveryStatus, str]]:
    """Deliveries under a claim and not final: id -> (status, claim token)."""
    with app.extensions["mailer.db"]() as session:
        rows = session.execute(
            select(Delivery.id, Delivery.status, Delivery.claim).where(
                Delivery.campaign_id == campaign_id,
                Delivery.status.in_(OPEN),
                Delivery.claim.is_not(None),
            )
        ).all()
    return {i: (status, claim) for i, status, claim in rows}


def freeze_holding_a_page(
    app: Flask,
    proc: subprocess.Popen,
    campaign_id: int,
    at_least: int,
    among: set[int] | None = None,
    tries: int = 50,
) -> dict[int, tuple[DeliveryStatus, str]]:
    """SIGSTOP a worker when at least `at_least` deliveries (of `among`, if given) are claimed
    and not yet sent, and no lock is held; returns the claimed, unfinished deliveries. Call it
    while only that worker claims: it cannot tell whose claims they are. A stop that lands
    badly is undone and tried again."""
    for _ in range(tries):
        freeze(proc)
        time.sleep(0.3)  # a statement already on its way finishes (and commits) server-side
        page = held(app, campaign_id)
        pending = {i for i, (status, _) in page.items() if status is DeliveryStatus.PENDING}
        if among is not None:
            pending &= among
        if len(pending) >= at_least and not _locked(app, campaign_id):
            return page
        thaw(proc)
        time.sleep(0.05)
    raise AssertionError(f"could not stop the worker holding a page in {tries} tries")


def status(app: Flask, campaign_id: int) -> CampaignStatus:
    with app.extensions["mailer.db"]() as session:
        return session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))


@dataclass
class Row:
    id: int
    email: str
    status: DeliveryStatus
    claim: str | None


def rows(app: Flask, campaign_id: int) -> list[Row]:
    with app.extensions["mailer.db"]() as session:
        found = session.execute(
            select(Delivery.id, Subscriber.email, Delivery.status, Delivery.claim)
            .join(Subscriber, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.campaign_id == campaign_id)
        ).all()
    return [Row(*r) for r in found]


def counts(app: Flask, campaign_id: int) -> dict[DeliveryStatus, int]:
    with app.extensions["mailer.db"]() as session:
        found = session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.campaign_id == campaign_id)
            .group_by(Delivery.status)
        ).all()
    return {s: n for s, n in found}


@dataclass
class SenderRun:
    """One finished `send_campaign` job, as RQ kept it."""

    worker: str
    started: datetime
    ended: datetime
    counts: dict[str, int]


def sender_runs(app: Flask) -> list[SenderRun]:
    from mailer import tasks
    from mailer.extensions import jobs

    runs = []
    with app.app_context():
        for queue in jobs.queues:
            for job in queue.finished_job_registry.get_job_ids():
                found = queue.fetch_job(job)
                if found is None or found.func_name != tasks.SEND_CAMPAIGN:
                    continue
                runs.append(
                    SenderRun(
                        found.worker_name or "",
                        found.started_at,
                        found.ended_at,
                        dict(found.return_value() or {}),
                    )
                )
    return runs


def running_senders(app: Flask) -> set[str]:
    """Ids of the `send_campaign` jobs some worker is running now."""
    from mailer import tasks
    from mailer.extensions import jobs

    with app.app_context():
        return {
            job_id
            for queue in jobs.queues
            for job_id in queue.started_job_registry.get_job_ids()
            if (job := queue.fetch_job(job_id)) is not None and job.func_name == tasks.SEND_CAMPAIGN
        }


def job_statuses(app: Flask, job_ids: set[str]) -> set[str]:
    """RQ's status of each of these jobs ("started", "finished", "failed", ...)."""
    from rq.job import Job

    from mailer.extensions import jobs

    with app.app_context():
        return {Job.fetch(i, connection=jobs.redis).get_status().value for i in job_ids}


def received(smtp_server: object) -> Counter[str]:
    """Messages the SMTP server accepted, per recipient."""
    return Counter(r.rcpt for r in smtp_server.received)  # type: ignore[attr-defined]
