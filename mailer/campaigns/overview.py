"""The campaign list: each campaign with its audience, sent count and human open and click
rates, a page at a time. The figures mean what the report and the dashboard mean
(`mailer.campaigns.latest.figures_of`).

Reads only; nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.campaigns.latest import CampaignFigures, figures_of
from mailer.campaigns.models import Campaign, CampaignStatus


@dataclass(frozen=True)
class CampaignRow:
    campaign: Campaign
    figures: CampaignFigures

    @property
    def audience(self) -> int:
        """Recipients resolved when sending started (0: not yet)."""
        return self.campaign.recipient_count

    @property
    def sent(self) -> int:
        return self.figures.sent

    @property
    def open_rate(self) -> float:
        """Human opens over messages sent."""
        return self.figures.human_open_rate

    @property
    def click_rate(self) -> float:
        return self.figures.click_rate


def campaigns_page(
    session: Session, page: int, per_page: int, status: CampaignStatus | None = None
) -> tuple[list[CampaignRow], int]:
    """One page of campaigns, newest first, and how many there are (with `status`, of that
    status)."""
    query = select(Campaign)
    if status is not None:
        query = query.where(Campaign.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    campaigns = list(
        session.scalars(
            query.order_by(Campaign.id.desc()).limit(per_page).offset((page - 1) * per_page)
        )
    )
    rows = [
        CampaignRow(c, f) for c, f in zip(campaigns, figures_of(session, campaigns), strict=True)
    ]
    return rows, total
