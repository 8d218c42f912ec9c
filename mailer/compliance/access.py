"""Access and portability (GDPR Art. 15, 20): everything we hold about an address, as one
structured, machine-readable document (`mailer.compliance.access_zip` writes the same as a ZIP
of CSVs).

Sections: profile (with attributes and engagement), subscriptions, consent events with the
texts shown, system messages, campaign deliveries, opens, clicks and bounces. Bounces are found
by the keyed HMAC of the address too, so those recorded before an erasure or for an address
without a profile are included."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, Delivery
from mailer.consent.models import ConsentEvent
from mailer.database import utcnow
from mailer.delivery.models import OutboundMessage
from mailer.pseudonyms import keyed
from mailer.subscribers.models import FormVersion, Subscriber
from mailer.subscribers.schemas import normalise_email
from mailer.tracking.models import Bounce, EventKind, TrackingEvent


class NothingHeld(LookupError):
    """No profile and no consent events for this address."""


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def subject_events(session: Session, email: str) -> list[ConsentEvent]:
    """Every ledger event of the person, by the keyed HMAC of their address (so events from
    before an erasure are included, pseudonymised)."""
    digest = keyed(session, normalise_email(email))
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subject_hmac == digest)
            .order_by(ConsentEvent.seq)
        )
    )


def export(session: Session, email: str) -> dict[str, Any]:
    """The access document. Read-only; raises `NothingHeld`."""
    address = normalise_email(email)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    events = subject_events(session, address)
    if subscriber is None and not events:
        raise NothingHeld(address)
    versions = {
        v.id: v
        for v in session.scalars(
            select(FormVersion).where(
                FormVersion.id.in_({e.form_version_id for e in events if e.form_version_id})
            )
        )
    }
    document: dict[str, Any] = {
        "generated_at": _iso(utcnow()),
        "email": address,
        "profile": None,
        "subscriptions": [],
        "consent_events": [_event(e, versions) for e in events],
        "consent_texts": {
            v.consent_text_sha256: {
                "form_id": v.form_id,
                "version": v.version,
                "text": v.consent_text,
            }
            for v in versions.values()
        },
        "messages": [],
        "deliveries": [],
        "opens": [],
        "clicks": [],
        "bounces": [],
    }
    delivery_ids: list[int] = []
    if subscriber is not None:
        document["profile"] = {
            "name": subscriber.name,
            "locale": subscriber.locale,
            "status": subscriber.status.value,
            "attributes": subscriber.attributes,
            "created_at": _iso(subscriber.created_at),
            "confirmed_at": _iso(subscriber.confirmed_at),
            "unsubscribed_at": _iso(subscriber.unsubscribed_at),
            "engagement": {
                "last_open_at": _iso(subscriber.last_open_at),
                "last_click_at": _iso(subscriber.last_click_at),
                "open_count": subscriber.open_count,
                "machine_open_count": subscriber.machine_open_count,
                "click_count": subscriber.click_count,
                "bounce_count": subscriber.bounce_count,
            },
        }
        document["subscriptions"] = [
            {
                "topic": s.topic.slug,
                "topic_name": s.topic.name,
                "status": s.status.value,
                "created_at": _iso(s.created_at),
                "confirmed_at": _iso(s.confirmed_at),
            }
            for s in subscriber.subscriptions
        ]
        document["messages"] = [
            {
                "kind": m.kind.value,
                "status": m.status.value,
                "message_id": m.message_id,
                "created_at": _iso(m.created_at),
                "sent_at": _iso(m.sent_at),
            }
            for m in session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.subscriber_id == subscriber.id)
                .order_by(OutboundMessage.id)
            )
        ]
        document["deliveries"] = _deliveries(session, subscriber.id)
        delivery_ids = [d["delivery_id"] for d in document["deliveries"]]
        document["opens"] = _events(session, subscriber.id, EventKind.OPEN)
        document["clicks"] = _events(session, subscriber.id, EventKind.CLICK)
    document["bounces"] = _bounces(session, keyed(session, address), delivery_ids)
    return document


def _deliveries(session: Session, subscriber_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Delivery, Campaign.name, Campaign.frozen_subject, Campaign.subject)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id)
    )
    return [
        {
            "delivery_id": d.id,
            "campaign_id": d.campaign_id,
            "campaign": name,
            "subject": frozen or subject,
            "status": d.status.value,
            "sent_at": _iso(d.sent_at),
            "opened_at": _iso(d.opened_at),
            "clicked_at": _iso(d.clicked_at),
            "error": d.error,
        }
        for d, name, frozen, subject in rows
    ]


def _events(session: Session, subscriber_id: int, kind: EventKind) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(TrackingEvent)
        .where(TrackingEvent.subscriber_id == subscriber_id, TrackingEvent.kind == kind)
        .order_by(TrackingEvent.occurred_at, TrackingEvent.id)
    )
    keep_link = kind is EventKind.CLICK
    return [
        {
            "occurred_at": _iso(e.occurred_at),
            "campaign_id": e.campaign_id,
            "delivery_id": e.delivery_id,
            "machine": e.machine,
            "reason": e.reason,
            "user_agent": e.user_agent,
            **({"link_index": e.link_index, "url": e.url} if keep_link else {}),
        }
        for e in rows
    ]


def _bounces(session: Session, digest: str, delivery_ids: list[int]) -> list[dict[str, Any]]:
    match = Bounce.email_hmac == digest
    if delivery_ids:
        match = or_(match, Bounce.delivery_id.in_(delivery_ids))
    return [
        {
            "occurred_at": _iso(b.occurred_at),
            "kind": b.kind.value,
            "source": b.source.value,
            "status": b.status,
            "diagnostic": b.diagnostic,
            "campaign_id": b.campaign_id,
            "delivery_id": b.delivery_id,
            "suppressed": b.suppressed,
        }
        for b in session.scalars(
            select(Bounce).where(match).order_by(Bounce.occurred_at, Bounce.id)
        )
    ]


def _event(event: ConsentEvent, versions: dict[int, FormVersion]) -> dict[str, Any]:
    version = versions.get(event.form_version_id) if event.form_version_id else None
    return {
        "seq": event.seq,
        "occurred_at": _iso(event.occurred_at),
        "type": event.type.value,
        "topics": event.topics,
        "lawful_basis": event.lawful_basis,
        "source": event.source.value,
        "form_id": event.form_id,
        "form_version": version.version if version else None,
        "consent_text_sha256": event.consent_text_sha256,
        "locale": event.locale,
        "email": event.email,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "evidence": event.evidence,
        "row_hash": event.row_hash,
    }
