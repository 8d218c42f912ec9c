"""The latest campaigns at a glance: sent, opened and clicked, people and machines apart.

The figures mean what the campaign report (`mailer.campaigns.reports.report`) means, for
several campaigns at once: two grouped queries (deliveries, machine clicks) instead of one
report per campaign. Rates are over the deliveries sent.

- human opens: deliveries opened by a person (`opened_at`);
- machine-only opens: deliveries whose only opens were machines (privacy proxies, scanners);
- clicks: deliveries clicked by a person (`clicked_at`);
- machine clicks: deliveries with a click judged a scanner's (tracking events).

Reads only; nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from mailer.tracking.models import EventKind, TrackingEvent


@dataclass(frozen=True)
class CampaignFigures:
    id: int
    name: str
    status: CampaignStatus
    started_at: datetime | None
    sent: int
    human_opens: int
    machine_only_opens: int
    clicks: int
    machine_clicks: int

    def _rate(self, part: int) -> float:
        return part / self.sent if self.sent else 0.0

    @property
    def human_open_rate(self) -> float:
        return self._rate(self.human_opens)

    @property
    def machine_open_rate(self) -> float:
        return self._rate(self.machine_only_opens)

    @property
    def click_rate(self) -> float:
        return self._rate(self.clicks)

    @property
    def machine_click_rate(self) -> float:
        return self._rate(self.machine_clicks)


def recent(session: Session, limit: int = 5) -> list[CampaignFigures]:
    """The `limit` campaigns that started sending most recently, newest first."""
    campaigns = list(
        session.scalars(
            select(Campaign)
            .where(Campaign.started_at.is_not(None))
            .order_by(Campaign.started_at.desc(), Campaign.id.desc())
            .limit(limit)
        )
    )
    return figures_of(session, campaigns)


def figures_of(session: Session, campaigns: list[Campaign]) -> list[CampaignFigures]:
    """The figures of these campaigns, in their order: two grouped queries in all."""
    ids = [c.id for c in campaigns]
    if not ids:
        return []

    def counted(condition) -> object:
        return func.count(case((condition, 1)))

    rows = session.execute(
        select(
            Delivery.campaign_id,
            counted(Delivery.status == DeliveryStatus.SENT),
            counted(Delivery.opened_at.is_not(None)),
            counted(Delivery.opened_at.is_(None) & Delivery.machine_opened_at.is_not(None)),
            counted(Delivery.clicked_at.is_not(None)),
        )
        .where(Delivery.campaign_id.in_(ids))
        .group_by(Delivery.campaign_id)
    ).all()
    figures = {row[0]: row[1:] for row in rows}
    machine_clicks = dict(
        session.execute(
            select(TrackingEvent.campaign_id, func.count(distinct(TrackingEvent.delivery_id)))
            .where(
                TrackingEvent.campaign_id.in_(ids),
                TrackingEvent.kind == EventKind.CLICK,
                TrackingEvent.machine.is_(True),
            )
            .group_by(TrackingEvent.campaign_id)
        ).all()
    )
    return [
        CampaignFigures(
            c.id,
            c.name,
            c.status,
            c.started_at,
            *figures.get(c.id, (0, 0, 0, 0)),
            machine_clicks=machine_clicks.get(c.id, 0),
        )
        for c in campaigns
    ]
