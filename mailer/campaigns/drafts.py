"""Creating and editing campaigns. Only drafts and scheduled campaigns can change: what went
out must stay what the report describes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, CampaignStatus, Template
from mailer.segments.models import Segment
from mailer.subscribers.models import Topic

EDITABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)
FIELDS = (
    "name",
    "subject",
    "preheader",
    "from_name",
    "from_email",
    "reply_to",
    "template_id",
    "topic_id",
    "segment_id",
    "track_opens",
    "track_clicks",
)


class DraftError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _check_refs(session: Session, values: dict[str, Any]) -> None:
    if "template_id" in values and session.get(Template, values["template_id"]) is None:
        raise DraftError("template_id", "no template with this id")
    if "topic_id" in values and session.get(Topic, values["topic_id"]) is None:
        raise DraftError("topic_id", "no topic with this id")
    segment_id = values.get("segment_id")
    if segment_id is not None and session.get(Segment, segment_id) is None:
        raise DraftError("segment_id", "no segment with this id")


def create(session: Session, values: dict[str, Any]) -> Campaign:
    """Values as validated by the API schema. Commits."""
    _check_refs(session, values)
    campaign = Campaign(**{k: v for k, v in values.items() if k in FIELDS})
    session.add(campaign)
    session.commit()
    return campaign


def update(session: Session, campaign: Campaign, values: dict[str, Any]) -> Campaign:
    """Change a draft or a scheduled campaign (it stays scheduled). Commits."""
    if campaign.status not in EDITABLE:
        raise DraftError("status", f"a {campaign.status.value} campaign cannot be edited")
    _check_refs(session, values)
    for key, value in values.items():
        if key in FIELDS:
            setattr(campaign, key, value)
    session.commit()
    return campaign
