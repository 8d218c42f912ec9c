"""Unsubscribes a campaign led to, for its report.

Unsubscribe links do not name the campaign (one link per person and topic), so this counts
recipients who withdrew from the campaign's topic within `WINDOW` of being sent it, from the
consent ledger: an attribution, the way mail tools report it, not a record of which message
the person clicked in.

Reads only (the window is checked here: interval arithmetic differs between SQLite and
PostgreSQL); rerunning is safe.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, Delivery, DeliveryStatus
from mailer.consent.models import ConsentEvent, ConsentEventType

WINDOW = timedelta(days=7)


def attributed(session: Session, campaign: Campaign) -> int:
    """Recipients of `campaign` who withdrew from its topic within WINDOW after it was sent
    to them (each person once)."""
    if campaign.started_at is None:
        return 0
    rows = session.execute(
        select(
            ConsentEvent.subscriber_id,
            ConsentEvent.topics,
            ConsentEvent.occurred_at,
            Delivery.sent_at,
        )
        .join(
            Delivery,
            and_(
                Delivery.subscriber_id == ConsentEvent.subscriber_id,
                Delivery.campaign_id == campaign.id,
                Delivery.status == DeliveryStatus.SENT,
            ),
        )
        .where(
            ConsentEvent.type == ConsentEventType.WITHDRAWN,
            ConsentEvent.occurred_at >= campaign.started_at,
        )
    ).all()
    slug = campaign.topic.slug
    return len(
        {
            sid
            for sid, topics, at, sent_at in rows
            if sent_at is not None
            and sent_at <= at <= sent_at + WINDOW
            and (not topics or slug in topics)
        }
    )
