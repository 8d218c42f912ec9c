"""Retention (GDPR Art. 5(1)(c), (e)): what we no longer need goes on a schedule.

- Sign-ups never confirmed within `retention_pending_days` (default 30): the person never gave
  consent, so we have no reason to keep their address. They go through the erasure path
  (`mailer.compliance.erasure.erase_held`): the profile goes, the clear email, IP and user
  agent of their "requested" events are blanked by the one UPDATE the ledger allows, and an
  "erased" event with actor "retention" is chained, so the ledger still verifies and shows
  why the data is gone. No "withdrawn" event (they withdrew nothing) and no suppression entry
  (nothing was consented to; a later sign-up is simply new).
- Raw tracking events (each open and click) older than `retention_tracking_days` (default 395,
  about 13 months). Profile and delivery figures already folded in by the flush stay.

Both run in batches (one commit per batch, never all rows in memory), and each run is on the
staff audit log with actor "retention" and its count, zero included: the log shows the policy
ran. Rerunning is safe: a second run finds nothing more to purge.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from mailer.compliance import erasure, staff_log
from mailer.config import Settings
from mailer.consent.models import ConsentEvent, ConsentSource
from mailer.database import utcnow
from mailer.pseudonyms import keyed
from mailer.subscribers import status
from mailer.subscribers.models import Subscriber, SubscriberStatus
from mailer.tracking.models import TrackingEvent

ACTOR = "retention"
PENDING_ACTION = "retention.pending_signups"
TRACKING_ACTION = "retention.tracking_events"
PENDING_BATCH = 100
TRACKING_BATCH = 5000


def run(session: Session, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Both purges with the configured ages; returns what each removed. Commits."""
    now = now or utcnow()
    return {
        "pending_signups": purge_pending(session, settings.retention_pending_days, now=now),
        "tracking_events": purge_tracking(session, settings.retention_tracking_days, now=now),
    }


def _stale(cutoff: datetime):
    """Never confirmed, created and last sent a confirmation before `cutoff`."""
    return (
        (Subscriber.status == SubscriberStatus.PENDING)
        & Subscriber.confirmed_at.is_(None)
        & (Subscriber.created_at < cutoff)
        & or_(Subscriber.confirmation_sent_at.is_(None), Subscriber.confirmation_sent_at < cutoff)
    )


def purge_pending(
    session: Session, days: int, *, now: datetime | None = None, batch: int = PENDING_BATCH
) -> int:
    """Erase sign-ups left unconfirmed for `days`. Commits once per batch of profiles.

    Each profile is locked and checked again before it goes, so one confirmed (or signed up
    again) while the purge runs is kept; so is one with any ledger event since the cutoff.
    """
    cutoff = (now or utcnow()) - timedelta(days=days)
    purged, after = 0, 0
    while True:
        ids = list(
            session.scalars(
                select(Subscriber.id)
                .where(_stale(cutoff), Subscriber.id > after)
                .order_by(Subscriber.id)
                .limit(batch)
            )
        )
        if not ids:
            break
        for subscriber_id in ids:
            purged += _purge_one(session, subscriber_id, cutoff, days)
        session.commit()
        after = ids[-1]
    _log(session, PENDING_ACTION, purged, days)
    return purged


def _purge_one(session: Session, subscriber_id: int, cutoff: datetime, days: int) -> int:
    subscriber = status.lock(session, subscriber_id)
    if subscriber is None or not session.scalar(
        select(func.count()).where(Subscriber.id == subscriber_id, _stale(cutoff))
    ):
        return 0
    digest = keyed(session, subscriber.email)
    latest = session.scalar(
        select(func.max(ConsentEvent.occurred_at)).where(ConsentEvent.subject_hmac == digest)
    )
    if latest is not None and latest >= cutoff:
        return 0
    erasure.erase_held(
        session,
        subscriber.email,
        subscriber,
        subscriber_id=subscriber.id,
        actor=ACTOR,
        source=ConsentSource.SYSTEM,
        evidence={"request": "retention", "policy": f"not confirmed within {days} days"},
        withdraw=False,
        suppress=False,
    )
    return 1


def purge_tracking(
    session: Session, days: int, *, now: datetime | None = None, batch: int = TRACKING_BATCH
) -> int:
    """Delete opens and clicks that happened more than `days` ago. Commits once per batch."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    purged = 0
    while True:
        ids = list(
            session.scalars(
                select(TrackingEvent.id)
                .where(TrackingEvent.occurred_at < cutoff)
                .order_by(TrackingEvent.id)
                .limit(batch)
            )
        )
        if not ids:
            break
        session.execute(
            delete(TrackingEvent)
            .where(TrackingEvent.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
        session.commit()
        purged += len(ids)
    _log(session, TRACKING_ACTION, purged, days)
    return purged


def _log(session: Session, action: str, purged: int, days: int) -> None:
    staff_log.record(
        session,
        staff_log.Staff(api_key_name=ACTOR),
        action,
        "cron retention",
        details={"purged": purged, "older_than_days": days},
    )
