"""Templates as a list shows them: a page of templates, each with how many campaigns use it.

Reads only. One query for the page and one grouped count for its templates, whatever the
number of templates or campaigns.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, Template


@dataclass(frozen=True)
class TemplateRow:
    template: Template
    campaigns: int


def templates_page(
    session: Session, page: int, per_page: int, name: str = ""
) -> tuple[list[TemplateRow], int]:
    """Templates, most recently changed first, with their campaign counts; and the total.
    `name` filters on a part of the name (case-insensitive)."""
    query = select(Template)
    if name:
        escaped = name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(func.lower(Template.name).like(f"%{escaped}%", escape="\\"))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    templates = list(
        session.scalars(
            query.order_by(Template.updated_at.desc(), Template.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    used = campaigns_using(session, [t.id for t in templates])
    return [TemplateRow(t, used.get(t.id, 0)) for t in templates], total


def campaigns_using(session: Session, template_ids: list[int]) -> dict[int, int]:
    """How many campaigns use each of `template_ids` (absent: none)."""
    if not template_ids:
        return {}
    rows = session.execute(
        select(Campaign.template_id, func.count())
        .where(Campaign.template_id.in_(template_ids))
        .group_by(Campaign.template_id)
    ).all()
    return {template_id: n for template_id, n in rows}


def choices(session: Session, limit: int = 500) -> list[Template]:
    """Templates to pick from for a campaign, most recently changed first."""
    return list(
        session.scalars(
            select(Template).order_by(Template.updated_at.desc(), Template.id.desc()).limit(limit)
        )
    )
