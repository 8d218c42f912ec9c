"""One subscriber's history as staff read it on the profile page: consent (the ledger's
events, with the exact text shown and how consent was given or confirmed), engagement
(opens and clicks, machine opens marked) and deliveries (campaign, status, when sent).

Read-only. Consent is the whole record (it is short and it is the proof); engagement and
deliveries are the newest `limit` with the total beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, Delivery
from mailer.consent.models import ConsentEvent
from mailer.subscribers import profiles
from mailer.tracking.models import TrackingEvent

CHANNELS = {
    "hosted": "the hosted sign-up form",
    "embed": "the embedded form on another site",
    "json": "a script posting JSON",
    "import": "a CSV import (no evidence: asked to confirm)",
}
METHODS = {
    "double_opt_in": "confirmed by the link in the confirmation email (double opt-in)",
    "import": "imported with evidence of consent given elsewhere",
    "preference_center": "changed on the preference page",
    "preference_center_unsubscribe_all": "unsubscribed from everything on the preference page",
    "one_click": "one-click unsubscribe from the mail client (RFC 8058)",
    "unsubscribe_page": "unsubscribed on the unsubscribe page",
    "erasure": "withdrawn as part of an erasure request",
}


@dataclass(frozen=True)
class ConsentEntry:
    seq: int
    occurred_at: datetime
    type: str
    topics: list[str]
    source: str
    how: str
    form_id: int | None
    form_slug: str | None
    version: int | None  # the form version's number
    sha256: str | None
    text: str | None  # the exact consent text shown, when the ledger points at one
    actor: str | None
    evidence: dict[str, Any]


def _how(event: dict[str, Any]) -> str:
    evidence = event["evidence"] or {}
    if "method" in evidence:
        how = METHODS.get(str(evidence["method"]), str(evidence["method"]))
        if evidence.get("consent_source"):
            how += f": {evidence['consent_source']}"
        return how
    if "channel" in evidence:
        how = "asked through " + CHANNELS.get(str(evidence["channel"]), str(evidence["channel"]))
        if evidence.get("origin"):
            how += f" ({evidence['origin']})"
        return how
    if evidence.get("request") == "retention":
        return "removed by the retention policy: " + str(evidence.get("policy", ""))
    return event["source"]


def consent(session: Session, subscriber_id: int) -> list[ConsentEntry]:
    """Every consent event of the subscriber in chain order, newest last."""
    events = list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subscriber_id == subscriber_id)
            .order_by(ConsentEvent.seq)
        )
    )
    described = profiles.describe_events(session, events)
    texts = {t["sha256"]: t["text"] for t in profiles.consent_texts(session, events)}
    return [
        ConsentEntry(
            seq=item["seq"],
            occurred_at=item["occurred_at"],
            type=item["type"],
            topics=item["topics"],
            source=item["source"],
            how=_how(item),
            form_id=item["form_id"],
            form_slug=item["form_slug"],
            version=item["form_version"],
            sha256=item["consent_text_sha256"],
            text=texts.get(item["consent_text_sha256"] or ""),
            actor=event.actor,
            evidence={k: v for k, v in (item["evidence"] or {}).items() if k != "consent_text"},
        )
        for item, event in zip(described, events, strict=True)
    ]


@dataclass(frozen=True)
class EngagementEntry:
    occurred_at: datetime
    kind: str  # open | click
    machine: bool
    reason: str | None  # why it counts as a machine
    campaign_id: int
    campaign: str
    url: str | None


def engagement(
    session: Session, subscriber_id: int, limit: int = 50
) -> tuple[list[EngagementEntry], int]:
    """The newest opens and clicks, and how many there are."""
    total = (
        session.scalar(
            select(func.count())
            .select_from(TrackingEvent)
            .where(TrackingEvent.subscriber_id == subscriber_id)
        )
        or 0
    )
    rows = session.execute(
        select(TrackingEvent, Campaign.name)
        .join(Campaign, Campaign.id == TrackingEvent.campaign_id)
        .where(TrackingEvent.subscriber_id == subscriber_id)
        .order_by(TrackingEvent.occurred_at.desc(), TrackingEvent.id.desc())
        .limit(limit)
    ).all()
    entries = [
        EngagementEntry(
            occurred_at=event.occurred_at,
            kind=event.kind.value,
            machine=event.machine,
            reason=event.reason,
            campaign_id=event.campaign_id,
            campaign=name,
            url=event.url,
        )
        for event, name in rows
    ]
    return entries, total


@dataclass(frozen=True)
class DeliveryEntry:
    campaign_id: int
    campaign: str
    status: str
    sent_at: datetime | None
    skip_reason: str | None
    opened_at: datetime | None
    clicked_at: datetime | None


def deliveries(
    session: Session, subscriber_id: int, limit: int = 50
) -> tuple[list[DeliveryEntry], int]:
    """The newest campaign deliveries to the subscriber, and how many there are."""
    total = (
        session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.subscriber_id == subscriber_id)
        )
        or 0
    )
    rows = session.execute(
        select(Delivery, Campaign.name)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    ).all()
    entries = [
        DeliveryEntry(
            campaign_id=d.campaign_id,
            campaign=name,
            status=d.status.value,
            sent_at=d.sent_at,
            skip_reason=d.skip_reason,
            opened_at=d.opened_at,
            clicked_at=d.clicked_at,
        )
        for d, name in rows
    ]
    return entries, total
