"""How many people a campaign would reach, asked before it is sent (the live count).

The same rule the send resolves recipients with (`recipients.audience`): the segment's
members (everyone, without a segment) with an active subscription to the topic, who are
active subscribers. Suppressed addresses are kept as HMACs and can only be checked per batch
while sending, so they are not subtracted here: the count is what `resolve` will create,
and a few may still end as "skipped".

Reads only; rerunning is safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.campaigns.recipients import audience
from mailer.database import utcnow
from mailer.segments.models import Segment


@dataclass(frozen=True)
class _Target:
    """What `recipients.audience` reads of a campaign."""

    topic_id: int
    segment: Segment | None


def estimate(
    session: Session, topic_id: int, segment_id: int | None = None, now: datetime | None = None
) -> int:
    """Recipients a campaign to `topic_id` (and `segment_id`) would have now. LookupError
    when the segment does not exist."""
    segment = None
    if segment_id is not None:
        segment = session.get(Segment, segment_id)
        if segment is None:
            raise LookupError(segment_id)
    members = audience(_Target(topic_id, segment), now or utcnow())  # type: ignore[arg-type]
    return session.scalar(select(func.count()).select_from(members.subquery())) or 0
