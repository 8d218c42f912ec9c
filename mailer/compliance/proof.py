"""One person's proof of consent, as staff read it (GDPR Art. 7(1); EDPB Guidelines 05/2020
§5.1): every ledger event for the address, the exact consent texts those events point at,
the consent receipt, and whether the address was erased (then only the pseudonymised proof
is left: Art. 17(3)(b), (e))."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailer.compliance import access, receipts
from mailer.consent.models import ConsentEventType
from mailer.pseudonyms import keyed
from mailer.subscribers import profiles
from mailer.subscribers.models import Subscriber, Subscription


@dataclass(frozen=True)
class Proof:
    email: str
    subject_hmac: str
    subscriber: Subscriber | None
    events: list[dict[str, Any]]
    consent_texts: list[dict[str, Any]]
    receipt: dict[str, Any] | None
    erased_at: datetime | None


def proof(session: Session, email: str, controller: dict[str, str]) -> Proof | None:
    """The proof for a normalised address, or None when nothing is held (no profile and no
    event, erased or not). Read-only."""
    events = access.subject_events(session, email)
    subscriber = session.scalar(
        select(Subscriber)
        .where(Subscriber.email == email)
        .options(selectinload(Subscriber.subscriptions).selectinload(Subscription.topic))
    )
    if subscriber is None and not events:
        return None
    try:
        receipt = receipts.receipt(session, email, controller)
    except access.NothingHeld:
        receipt = None
    last = events[-1] if events else None
    erased = last is not None and last.type is ConsentEventType.ERASED and subscriber is None
    return Proof(
        email=email,
        subject_hmac=keyed(session, email),
        subscriber=subscriber,
        events=profiles.describe_events(session, events, clear_values=True),
        consent_texts=profiles.consent_texts(session, events),
        # After an erasure the receipt would name active topics the person no longer has.
        receipt=None if erased else receipt,
        erased_at=last.occurred_at if erased else None,
    )
