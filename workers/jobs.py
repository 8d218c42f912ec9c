"""RQ jobs: ids in, one service call out. They run inside the app context the worker pushed."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from rq import get_current_job

from mailer import tasks
from mailer.campaigns import compilations, concurrency, lifecycle, sending
from mailer.campaigns.pacing import Pacer
from mailer.compliance import export_jobs, retention, staff_log, verification
from mailer.config import Settings
from mailer.consent import chain
from mailer.database import utcnow
from mailer.delivery.models import MessageStatus
from mailer.delivery.sender import Sender
from mailer.extensions import db, jobs
from mailer.settings import store
from mailer.subscribers import drain, import_jobs, notices
from mailer.tracking import flush


def _settings() -> Settings:
    """The settings in force: the environment's with the admin's over them (see
    `mailer.settings.store.effective`; cached a few seconds), read afresh by each job."""
    with db.sessionmaker() as session:
        return store.effective(session, current_app.config["MAILER"])


def send_message(message_id: int) -> str | None:
    """Send one system email; rerunning is safe (see `notices.send`)."""
    ctx = current_app.extensions["mailer.delivery"]
    job = get_current_job()
    final = job is None or not job.retries_left
    sender = Sender(_settings())  # SMTP server and DKIM key as the admin set them
    with db.sessionmaker() as session:
        result = notices.send(session, message_id, sender, ctx.links, final_attempt=final)
    return result.value if result else None


def send_messages(message_ids: list[int]) -> int:
    """Send system emails queued together (a batch of sign-ups) in one job: one fork, one
    database connection, one SMTP connection, one read of what the emails need (`notices.Batch`)
    and one commit an email. A message that fails for a temporary reason is put
    back to pending (`notices.send`) and gets a job of its own, with the usual retries and
    back-off; the others go on. Rerunning is safe: a message sent already is skipped.
    Returns how many were sent."""
    ctx = current_app.extensions["mailer.delivery"]
    sender = Sender(_settings())
    sent = 0
    with db.sessionmaker() as session, sender.one_connection():
        batch = notices.Batch.load(session, message_ids)
        for message_id in message_ids:
            try:
                result = notices.send(session, message_id, sender, ctx.links, batch=batch)
            except Exception:
                session.rollback()
                retry_at = utcnow() + timedelta(seconds=tasks.RETRY.intervals[0])
                tasks.enqueue(tasks.SEND_MESSAGE, message_id, at=retry_at)
                continue
            sent += result is MessageStatus.SENT
        notices.finish_batch(session)
    return sent


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


def start_campaign(campaign_id: int) -> bool:
    """Start a due campaign, resolve its recipients once, enqueue its senders. Safe to rerun."""
    settings = current_app.config["MAILER"]
    with db.sessionmaker() as session:
        go = lifecycle.begin(session, campaign_id)
    if go:
        lifecycle.enqueue_senders(campaign_id, settings.send_jobs)
    return go


def send_campaign(campaign_id: int) -> dict[str, int]:
    """Send for up to a minute with `send_concurrency` senders side by side, then hand over to
    a fresh job (or come back when due). Any number may run at once, on any workers; see
    `mailer.campaigns.sending` and `mailer.campaigns.concurrency`."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = _settings()
    tokens = app.extensions["mailer.tokens"]
    sessions = db.sessionmaker

    def sender() -> sending.RunResult:
        with app.app_context():
            return sending.Sender(sessions, settings, tokens, campaign_id).run()

    count = concurrency.senders(settings.send_concurrency, sessions.kw["bind"].dialect.name)
    result = concurrency.run(sender, count)
    if result.next is sending.Next.AGAIN:
        tasks.enqueue(tasks.SEND_CAMPAIGN, campaign_id)
    elif result.next is sending.Next.LATER and result.at is not None:
        # Senders that stop together come back as one job.
        job_id = f"campaign-{campaign_id}-at-{int(result.at.timestamp())}"
        tasks.enqueue(tasks.SEND_CAMPAIGN, campaign_id, at=result.at, job_id=job_id)
    return result.counts


def sweep_campaigns() -> list[int]:
    """Start overdue scheduled campaigns, restart stalled ones, settle stopped ones (from
    `mailer cron`). Safe any time: the start job and the senders guard themselves."""
    settings = current_app.config["MAILER"]
    now = utcnow()
    with db.sessionmaker() as session:
        lifecycle.settle(session, now, settings.sending_lease)
        ids = lifecycle.due_or_stalled(
            session,
            now,
            settings.claim_lease,
            settings.sending_lease,
            window_open=Pacer(_settings()).window_open(),
        )
    for campaign_id in ids:
        tasks.enqueue(tasks.START_CAMPAIGN, campaign_id)
    return ids


def flush_tracking() -> int:
    """Fold opens and clicks from the Redis stream into events and profiles (every few
    seconds, from `mailer cron`). Safe to rerun and to overlap: see `mailer.tracking.flush`."""
    settings = current_app.config["MAILER"]
    with db.sessionmaker() as session:
        report = flush.flush_events(
            session, jobs.redis, machine_open_seconds=settings.machine_open_seconds
        )
    return report.recorded


def drain_signups() -> int:
    """Write the sign-ups accepted into the Redis intake (kicked by the sign-up requests, and
    every few seconds from `mailer cron`); hands over to a fresh job when more are waiting.
    Safe to rerun and to overlap: see `mailer.subscribers.drain`."""
    settings = current_app.config["MAILER"]
    with db.sessionmaker() as session:
        report = drain.drain(
            session,
            jobs.redis,
            window_seconds=settings.confirmation_window,
            domain=settings.server_name,
        )
    if report.more:
        tasks.enqueue(tasks.DRAIN_SIGNUPS)
    return report.written


def apply_retention() -> dict[str, int]:
    """Purge never-confirmed sign-ups and old tracking events (daily, from `mailer cron`).
    Commits per batch; safe to rerun: see `mailer.compliance.retention`."""
    settings = _settings()
    with db.sessionmaker() as session:
        return retention.run(session, settings)


def run_export(export_id: int) -> bool:
    """Write a consent audit export requested from the admin pages into its file. Commits
    progress as it goes; safe to rerun: see `mailer.compliance.export_jobs.run`."""
    settings = current_app.config["MAILER"]
    return export_jobs.run(
        db.sessionmaker,
        export_id,
        export_jobs.folder(settings.instance_path),
        settings.export_ttl_hours,
    )


def purge_exports() -> int:
    """Delete export files past their expiry (hourly, from `mailer cron`). Safe to rerun."""
    settings = current_app.config["MAILER"]
    with db.sessionmaker() as session:
        return export_jobs.purge_expired(session, export_jobs.folder(settings.instance_path))


def purge_compilations() -> int:
    """Delete compiled MJML no template or system email uses any more (daily, from `mailer
    cron`): live previews leave one row per pause in typing. Safe to rerun."""
    with db.sessionmaker() as session:
        return compilations.purge_unused(session)


def verify_ledger(user_id: int) -> bool:
    """Walk the consent ledger for a staff user who asked from the admin pages (large
    ledgers); the outcome goes on the staff audit log. Safe to rerun: one more record."""
    with db.sessionmaker() as session:
        staff = staff_log.Staff(user_id=user_id)
        return verification.run(session, staff, "job verify_ledger").ok


def import_subscribers(import_id: int) -> str:
    """Run a CSV import started from the admin pages. Commits as it goes; safe to rerun:
    see `mailer.subscribers.import_jobs.run`."""
    return import_jobs.run(db.sessionmaker, current_app.config["MAILER"], import_id)
