"""What happened to a campaign, from the delivery rows (live counts) and tracking events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, Delivery, DeliveryStatus


def counts(session: Session, campaign_id: int) -> dict[str, int]:
    """Deliveries by status: one GROUP BY on an indexed (campaign, status) pair."""
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.status)
    ).all()
    result = {status.value: 0 for status in DeliveryStatus}
    for status, n in rows:
        result[status.value] = n
    result["total"] = sum(n for _, n in rows)
    return result


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def report(session: Session, campaign: Campaign) -> dict[str, Any]:
    by_status = counts(session, campaign.id)
    skipped = dict(
        session.execute(
            select(Delivery.skip_reason, func.count())
            .where(Delivery.campaign_id == campaign.id, Delivery.status == DeliveryStatus.SKIPPED)
            .group_by(Delivery.skip_reason)
        ).all()
    )
    mine = Delivery.campaign_id == campaign.id
    human_opens = session.scalar(select(func.count()).where(mine, Delivery.opened_at.is_not(None)))
    machine_only = session.scalar(
        select(func.count()).where(
            mine, Delivery.opened_at.is_(None), Delivery.machine_opened_at.is_not(None)
        )
    )
    clicks = session.scalar(select(func.count()).where(mine, Delivery.clicked_at.is_not(None)))
    delivered = by_status["sent"]
    result: dict[str, Any] = {
        "campaign_id": campaign.id,
        "status": campaign.status.value,
        "recipients": campaign.recipient_count,
        "deliveries": by_status,
        "skipped": {str(k): v for k, v in skipped.items()},
        "opens": {
            "unique_human": human_opens or 0,
            "unique_machine_only": machine_only or 0,
            "human_rate": _rate(human_opens or 0, delivered),
        },
        "clicks": {"unique": clicks or 0, "rate": _rate(clicks or 0, delivered)},
        "started_at": campaign.started_at,
        "finished_at": campaign.finished_at,
    }
    from mailer.tracking import reporting

    result.update(reporting.campaign_figures(session, campaign.id))
    return result
