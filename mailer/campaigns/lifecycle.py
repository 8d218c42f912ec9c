"""A campaign's life: draft → scheduled → sending ⇄ paused → sent, or cancelled on the way.

Every transition is one guarded UPDATE (`... WHERE status IN (allowed)`), so two people (or a
person and the scheduler) acting at once cannot both win, and a job that runs twice finds
nothing left to do. Jobs are enqueued only after the transition commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from mailer import tasks
from mailer.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from mailer.database import after_commit, utcnow

S = CampaignStatus


class CampaignStateError(ValueError):
    """The campaign is not in a state that allows this; `field` is always "status"."""

    field = "status"


def _transition(
    session: Session,
    campaign_id: int,
    allowed: Iterable[CampaignStatus],
    target: CampaignStatus,
    action: str,
    **values: object,
) -> Campaign:
    allowed = tuple(allowed)
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status.in_(allowed))
        .values(status=target, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    campaign = session.get(Campaign, campaign_id, populate_existing=True)
    if campaign is None:
        raise LookupError(campaign_id)
    if result.rowcount != 1:
        session.rollback()
        raise CampaignStateError(
            f"cannot {action} a campaign that is {campaign.status.value}; "
            f"allowed from: {', '.join(s.value for s in allowed)}"
        )
    return campaign


def _freeze(session: Session, campaign: Campaign) -> None:
    from mailer.campaigns import rendering

    rendering.freeze(session, campaign)


def schedule(session: Session, campaign_id: int, send_at: datetime) -> Campaign:
    """Send at `send_at` (timezone-aware). Content is checked now and frozen when sending
    starts. RQ's scheduler enqueues the start; `sweep` catches a start lost with Redis. Commits."""
    if send_at.tzinfo is None:
        raise ValueError("send_at needs a timezone")
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise LookupError(campaign_id)
    _freeze(session, campaign)  # refuse bad content now, not at 3 a.m.
    campaign = _transition(
        session, campaign_id, (S.DRAFT, S.SCHEDULED), S.SCHEDULED, "schedule", send_at=send_at
    )
    after_commit(session, lambda: tasks.enqueue(tasks.START_CAMPAIGN, campaign_id, at=send_at))
    session.commit()
    return campaign


def send_now(session: Session, campaign_id: int) -> Campaign:
    """Freeze the content and start sending. Commits; the start job resolves recipients."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise LookupError(campaign_id)
    if campaign.status not in (S.DRAFT, S.SCHEDULED):
        raise CampaignStateError(f"cannot send a campaign that is {campaign.status.value}")
    _freeze(session, campaign)
    campaign = _transition(
        session, campaign_id, (S.DRAFT, S.SCHEDULED), S.SENDING, "send", started_at=utcnow()
    )
    after_commit(session, lambda: tasks.enqueue(tasks.START_CAMPAIGN, campaign_id))
    session.commit()
    return campaign


def pause(session: Session, campaign_id: int) -> Campaign:
    """Senders see it within a second, hand back what they claimed and stop. Commits."""
    campaign = _transition(session, campaign_id, (S.SENDING,), S.PAUSED, "pause")
    session.commit()
    return campaign


def resume(session: Session, campaign_id: int) -> Campaign:
    """Back to sending. The start job runs again: it resolves the recipients if a pause came
    before they were (a paused campaign is never resolved), then enqueues the senders."""
    campaign = _transition(session, campaign_id, (S.PAUSED,), S.SENDING, "resume")
    after_commit(session, lambda: tasks.enqueue(tasks.START_CAMPAIGN, campaign_id))
    session.commit()
    return campaign


def cancel(session: Session, campaign_id: int) -> Campaign:
    """Stop for good: recipients not yet on the wire are skipped ("cancelled"). Commits."""
    now = utcnow()
    campaign = _transition(
        session,
        campaign_id,
        (S.SCHEDULED, S.SENDING, S.PAUSED),
        S.CANCELLED,
        "cancel",
        finished_at=now,
    )
    session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.SKIPPED, skip_reason="cancelled", claim=None)
    )
    session.commit()
    return campaign


def enqueue_senders(campaign_id: int, count: int) -> None:
    for _ in range(count):
        tasks.enqueue(tasks.SEND_CAMPAIGN, campaign_id)


def begin(session: Session, campaign_id: int, now: datetime | None = None) -> bool:
    """The start job: a due scheduled campaign starts; a sending one gets its recipients.

    Returns True when senders should be enqueued. Safe to run any number of times: a
    campaign is resolved once (guarded by `resolved_at`), and a scheduled one only starts
    when its time has come (an old job for a moved schedule does nothing). Commits."""
    from mailer.campaigns import recipients

    now = now or utcnow()
    campaign = session.get(Campaign, campaign_id, populate_existing=True)
    if campaign is None:
        return False
    if campaign.status is S.SCHEDULED:
        # RQ may run the job a moment early; a schedule moved later must wait for its own job.
        if campaign.send_at is None or campaign.send_at > now + timedelta(seconds=5):
            return False
        _freeze(session, campaign)
        campaign = _transition(
            session, campaign_id, (S.SCHEDULED,), S.SENDING, "start", started_at=now
        )
        session.commit()
    if campaign.status is not S.SENDING:
        return False
    if campaign.resolved_at is None:
        recipients.resolve(session, campaign, now)
        session.commit()
    return True


def due_or_stalled(
    session: Session, now: datetime, stalled_after: int, sending_lease: int, window_open: bool
) -> list[int]:
    """Campaigns the sweep should (re)start: scheduled ones past due (their job was lost with
    Redis, or everything was down), and sending ones no sender touched lately that have work:
    unresolved, unclaimed recipients that are due, recipients stuck "sending", or nothing left
    but the finish. Recipients waiting for a retry time do not count: their sender is
    scheduled."""
    due = session.scalars(
        select(Campaign.id).where(Campaign.status == S.SCHEDULED, Campaign.send_at <= now)
    ).all()
    quiet = now - timedelta(seconds=stalled_after)
    stuck = now - timedelta(seconds=sending_lease)
    open_states = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
    stalled = []
    for campaign in session.scalars(select(Campaign).where(Campaign.status == S.SENDING)):
        if campaign.resolved_at is None:
            if campaign.started_at is None or campaign.started_at < quiet:
                stalled.append(campaign.id)
            continue
        if not window_open:
            continue  # the rate limit's window is closed: its senders come back when it opens
        mine = Delivery.campaign_id == campaign.id
        busy = select(Delivery.id).where(
            mine, Delivery.status.in_(open_states), Delivery.claimed_at >= quiet
        )
        if session.scalar(busy.limit(1)) is not None:
            continue  # a sender touched it lately
        idle = select(Delivery.id).where(
            mine,
            Delivery.status == DeliveryStatus.PENDING,
            or_(Delivery.claim.is_(None), Delivery.claimed_at < quiet),
            or_(Delivery.retry_at.is_(None), Delivery.retry_at < quiet),
        )
        lost = select(Delivery.id).where(
            mine, Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_at < stuck
        )
        left = select(Delivery.id).where(mine, Delivery.status.in_(open_states))
        if (
            session.scalar(idle.limit(1)) is not None
            or session.scalar(lost.limit(1)) is not None
            or session.scalar(left.limit(1)) is None
        ):
            stalled.append(campaign.id)
    return [*due, *stalled]


def settle(session: Session, now: datetime, sending_lease: int) -> int:
    """Bring stopped campaigns' rows to rest (from the sweep): a cancelled campaign's
    recipients put back for a retry are skipped, and a recipient a dead sender left
    "sending" in a paused or cancelled campaign becomes "unknown". Commits."""
    stuck = now - timedelta(seconds=sending_lease)
    recent = now - timedelta(days=1)
    stopped = session.execute(
        select(Campaign.id, Campaign.status).where(
            or_(
                Campaign.status == S.PAUSED,
                (Campaign.status == S.CANCELLED) & (Campaign.finished_at > recent),
            )
        )
    ).all()
    changed = 0
    for campaign_id, state in stopped:
        mine = Delivery.campaign_id == campaign_id
        changed += session.execute(
            update(Delivery)
            .where(mine, Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_at < stuck)
            .values(
                status=DeliveryStatus.UNKNOWN,
                error="the sender stopped during SMTP; the message may have been delivered",
            )
        ).rowcount
        if state is S.CANCELLED:
            changed += session.execute(
                update(Delivery)
                .where(mine, Delivery.status == DeliveryStatus.PENDING)
                .values(status=DeliveryStatus.SKIPPED, skip_reason="cancelled", claim=None)
            ).rowcount
    session.commit()
    return changed
