"""Erasure (GDPR Art. 17): the person's data goes, the proof that consent existed and was
withdrawn stays, pseudonymised (Art. 17(3)(b), (e))."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.delivery import suppressions
from mailer.delivery.models import SuppressionReason
from mailer.pseudonyms import keyed
from mailer.subscribers import preferences, status
from mailer.subscribers.models import Subscriber
from mailer.subscribers.schemas import normalise_email


class NothingToErase(LookupError):
    """We hold nothing personal about this address: never seen, or already erased."""


@dataclass(frozen=True)
class Erasure:
    subject_hmac: str
    events_pseudonymised: int
    erased_event_id: int
    withdrawn: list[str]


def erase(
    session: Session, email: str, actor: str, source: ConsentSource = ConsentSource.ADMIN
) -> Erasure:
    """Erase everything personal we hold about `email`, in one transaction. Commits.

    In order: what is still subscribed is withdrawn (so the ledger shows consent ended), an
    "erased" event is chained (HMACs only), the clear email, IP and user agent are blanked on
    every event of this person (the one UPDATE the ledger's triggers allow), the profile goes
    with its subscriptions and messages, and an erasure entry on the suppression list (an
    HMAC) lets imports recognise the address without knowing it. A new sign-up afterwards is a
    fresh start with fresh consent. Raises `NothingToErase` when there is nothing to erase.
    """
    address = normalise_email(email)
    digest = keyed(session, address)
    found = session.scalar(select(Subscriber.id).where(Subscriber.email == address))
    subscriber = status.lock(session, found) if found is not None else None
    last_event = session.scalar(
        select(ConsentEvent)
        .where(ConsentEvent.subject_hmac == digest)
        .order_by(ConsentEvent.seq.desc())
        .limit(1)
    )
    already_erased = last_event is not None and last_event.type is ConsentEventType.ERASED
    if subscriber is None and (last_event is None or already_erased):
        session.rollback()
        raise NothingToErase(address)

    withdrawn: list[str] = []
    if subscriber is not None:
        withdrawn = preferences.record_withdrawal(
            session, subscriber, None, source, evidence={"method": "erasure"}, actor=actor
        )

    erased = chain.append(
        session,
        ConsentEvent(
            type=ConsentEventType.ERASED,
            subscriber_id=subscriber.id if subscriber is not None else last_event.subscriber_id,
            subject_hmac=digest,
            topics=[],
            lawful_basis="legal_claims",  # why the proof is kept: Art. 17(3)(b), (e)
            source=source,
            evidence={"request": "erasure"},
            actor=actor,
            occurred_at=utcnow(),
        ),
    )
    blanked = session.execute(
        update(ConsentEvent)
        .where(ConsentEvent.subject_hmac == digest)
        .where(
            or_(
                ConsentEvent.email.is_not(None),
                ConsentEvent.ip.is_not(None),
                ConsentEvent.user_agent.is_not(None),
            )
        )
        .values(email=None, ip=None, user_agent=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if subscriber is not None:
        session.delete(subscriber)
    suppressions.add(session, address, SuppressionReason.ERASED, "erased on request")
    session.commit()
    return Erasure(digest, blanked, erased.id, withdrawn)
