"""Listing segments a page at a time, and deleting one that nothing depends on.

A campaign keeps its segment (the foreign key is RESTRICT): a sent, sending or scheduled
campaign's segment says whom it was for, and a draft would silently widen to everyone on its
topic if its segment went away. So a segment in use by any campaign is not deleted; the error
names the campaigns and what to do.

Who commits: `delete` commits (rerunning it on a deleted segment raises `SegmentNotFound`);
`page` and `campaigns_using` only read.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.segments.models import Segment
from mailer.segments.service import SegmentError, get

MAX_NAMED = 5


def page(
    session: Session, page_number: int, per_page: int, search: str = ""
) -> tuple[list[Segment], int]:
    """One page of segments by name (a name containing `search`, any case), and the total."""
    query = select(Segment)
    if search:
        escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(func.lower(Segment.name).like(f"%{escaped}%", escape="\\"))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Segment.name, Segment.id)
        .limit(per_page)
        .offset((page_number - 1) * per_page)
    )
    return list(rows), total


def campaigns_using(session: Session, segment_id: int) -> list[Campaign]:
    """Campaigns that target the segment, newest first."""
    query = select(Campaign).where(Campaign.segment_id == segment_id).order_by(Campaign.id.desc())
    return list(session.scalars(query))


def delete(session: Session, segment_id: int) -> str:
    """Delete the segment and return its name. Commits. `SegmentNotFound`, or `SegmentError`
    (under `segment`) naming the campaigns that use it."""
    segment = get(session, segment_id)
    using = campaigns_using(session, segment.id)
    if using:
        raise SegmentError({"segment": [_in_use(using)]})
    name = segment.name
    session.delete(segment)
    session.commit()
    return name


def _in_use(campaigns: list[Campaign]) -> str:
    drafts = [c for c in campaigns if c.status is CampaignStatus.DRAFT]
    others = [c for c in campaigns if c.status is not CampaignStatus.DRAFT]
    parts = []
    if others:
        parts.append(
            f"campaigns that were sent or are on their way keep it as the record of whom they "
            f"went to ({_names(others)})"
        )
    if drafts:
        parts.append(
            f"draft campaigns use it: choose another audience for them first ({_names(drafts)})"
        )
    return "This segment cannot be deleted: " + "; ".join(parts) + "."


def _names(campaigns: list[Campaign]) -> str:
    shown = ", ".join(f"{c.name} ({c.status.value})" for c in campaigns[:MAX_NAMED])
    more = len(campaigns) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")
