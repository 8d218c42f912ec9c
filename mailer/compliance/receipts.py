"""Consent receipts shaped after the Kantara Initiative Consent Receipt v1.1."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.compliance.access import NothingHeld, subject_events
from mailer.consent.models import ConsentEventType
from mailer.subscribers.models import Subscriber, SubscriptionStatus, Topic
from mailer.subscribers.schemas import normalise_email

VERSION = "KI-CR-v1.1.0"
# A stable namespace: the same confirmation always yields the same receipt id.
NAMESPACE = uuid.UUID("6f0d2a52-5c1e-4b7e-9f62-0c9a7e1b1d55")


def receipt(session: Session, email: str, controller: dict[str, str]) -> dict[str, Any]:
    """The receipt for the person's current consent, from the ledger. Raises `NothingHeld`
    when no consent was ever confirmed (or imported with evidence) for the address."""
    address = normalise_email(email)
    given = (ConsentEventType.CONFIRMED, ConsentEventType.IMPORTED)
    confirmed = [e for e in subject_events(session, address) if e.type in given]
    if not confirmed:
        raise NothingHeld(address)
    latest = confirmed[-1]
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    active = (
        sorted(
            s.topic.slug for s in subscriber.subscriptions if s.status is SubscriptionStatus.ACTIVE
        )
        if subscriber is not None
        else []
    )
    names = {t.slug: t.name for t in session.scalars(select(Topic).where(Topic.slug.in_(active)))}
    method = (latest.evidence or {}).get("method", "double_opt_in")
    given_at = latest.occurred_at
    if latest.type is ConsentEventType.IMPORTED:
        method = "imported"
        # Consent was given when the evidence says, not when we imported it.
        with contextlib.suppress(KeyError, TypeError, ValueError):
            given_at = datetime.fromisoformat(latest.evidence["consent_at"])
    return {
        "version": VERSION,
        "jurisdiction": controller["jurisdiction"],
        "consentTimestamp": int(given_at.timestamp()),
        "collectionMethod": {
            "double_opt_in": "web form, confirmed by a link sent to the address (double opt-in)",
            "preference_center": "preference page reached from a link sent to the address",
            "imported": "imported with recorded evidence of consent: "
            + str((latest.evidence or {}).get("consent_source") or "not described"),
        }.get(method, method),
        "consentReceiptID": str(uuid.uuid5(NAMESPACE, latest.row_hash)),
        "language": latest.locale or "en",
        "piiPrincipalId": address,
        "piiControllers": [
            {
                "piiController": controller["name"],
                "contact": controller["email"],
                "address": controller["address"],
                "email": controller["email"],
                "phone": controller["phone"],
                "piiControllerUrl": controller["url"],
            }
        ],
        "policyUrl": controller["policy_url"],
        "services": [
            {
                "service": names.get(slug, slug),
                "purposes": [
                    {
                        "purpose": f"Email about {names.get(slug, slug)}",
                        "purposeCategory": ["Direct marketing by email"],
                        "consentType": "EXPLICIT",
                        "piiCategory": ["email address", "name", "language"],
                        "primaryPurpose": True,
                        "termination": "Until withdrawn: one click on any unsubscribe link",
                        "thirdPartyDisclosure": False,
                        "thirdPartyName": None,
                    }
                ],
            }
            for slug in active
        ],
        "sensitive": False,
        "spiCat": [],
    }
