"""Erasure (GDPR Art. 17): the person's data goes, the proof that consent existed and was
withdrawn stays, pseudonymised (Art. 17(3)(b), (e)).

What goes, table by table: the profile with its subscriptions and system messages; their
tracking events (deleted here, and by the foreign key's CASCADE); their campaign deliveries
stay for the campaign's counts but lose the subscriber link (FK SET NULL) and any address or
name quoted in an SMTP error; bounces keep only the keyed HMAC and a diagnostic scrubbed of
the address, its local part and the name; ledger rows keep HMACs, their clear email, IP and
user agent are blanked (the one UPDATE the ledger's triggers allow).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from mailer.campaigns.models import Delivery
from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.delivery import suppressions
from mailer.delivery.models import Suppression, SuppressionReason
from mailer.pseudonyms import keyed
from mailer.subscribers import preferences, status
from mailer.subscribers.models import Subscriber
from mailer.subscribers.schemas import normalise_email
from mailer.tracking.models import Bounce, TrackingEvent

ERASED_TEXT = "<erased>"
# Shorter names ("Al") would mangle unrelated words in a diagnostic; the address and its
# local part are always scrubbed.
MIN_NAME_LENGTH = 3


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
    every event of this person, tracking events go, deliveries and bounces are scrubbed (see
    the module docstring), the profile goes, and an erasure entry on the suppression list (an
    HMAC) lets imports recognise the address without knowing it. A new sign-up afterwards is
    a fresh start with fresh consent. Raises `NothingToErase` when there is nothing to erase;
    rerunning after a success therefore raises too (nothing is erased twice).
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

    result = erase_held(
        session,
        address,
        subscriber,
        subscriber_id=subscriber.id if subscriber is not None else last_event.subscriber_id,
        actor=actor,
        source=source,
    )
    session.commit()
    return result


def erase_held(
    session: Session,
    address: str,
    subscriber: Subscriber | None,
    *,
    subscriber_id: int,
    actor: str,
    source: ConsentSource,
    evidence: dict[str, Any] | None = None,
    withdraw: bool = True,
    suppress: bool = True,
) -> Erasure:
    """The erasure itself, for a normalised `address` whose profile (if any) the caller has
    locked (`mailer.subscribers.status.lock`). Flushes, does not commit: the caller commits.

    `withdraw=False` skips the "withdrawn" event (retention purging a sign-up that was never
    confirmed: the person withdrew nothing); `suppress=False` skips the erasure entry on the
    suppression list (nothing was ever consented to, so nothing to flag on re-import).
    """
    digest = keyed(session, address)
    withdrawn: list[str] = []
    if subscriber is not None and withdraw:
        withdrawn = preferences.record_withdrawal(
            session, subscriber, None, source, evidence={"method": "erasure"}, actor=actor
        )
    erased = chain.append(
        session,
        ConsentEvent(
            type=ConsentEventType.ERASED,
            subscriber_id=subscriber_id,
            subject_hmac=digest,
            topics=[],
            lawful_basis="legal_claims",  # why the proof is kept: Art. 17(3)(b), (e)
            source=source,
            evidence=evidence or {"request": "erasure"},
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
    needles = _identifying(address, subscriber.name if subscriber is not None else "")
    delivery_ids: list[int] = []
    if subscriber is not None:
        delivery_ids = _scrub_deliveries(session, subscriber.id, needles)
        # The foreign key cascades too; deleting here does not depend on it.
        session.execute(
            delete(TrackingEvent)
            .where(TrackingEvent.subscriber_id == subscriber.id)
            .execution_options(synchronize_session=False)
        )
    _scrub_bounces(session, digest, delivery_ids, needles)
    _scrub_suppression(session, digest, needles)
    if subscriber is not None:
        session.delete(subscriber)
    if suppress:
        suppressions.add(session, address, SuppressionReason.ERASED, "erased on request")
    session.flush()
    return Erasure(digest, blanked, erased.id, withdrawn)


def _identifying(address: str, name: str) -> list[str]:
    """What must not survive in free text: the address, its local part and the name."""
    needles = [address, address.rpartition("@")[0]]
    needles += [n for n in {name.strip(), *name.split()} if len(n) >= MIN_NAME_LENGTH]
    return sorted({n for n in needles if n}, key=len, reverse=True)


def scrub_text(text: str, needles: Iterable[str]) -> str:
    """`text` with every needle (case-insensitive) replaced by `<erased>`."""
    for needle in needles:
        text = re.sub(re.escape(needle), ERASED_TEXT, text, flags=re.IGNORECASE)
    return text


def _scrub_deliveries(session: Session, subscriber_id: int, needles: list[str]) -> list[int]:
    """SMTP errors often quote the address; the row itself stays (SET NULL by the FK)."""
    ids = []
    for delivery_id, error in session.execute(
        select(Delivery.id, Delivery.error).where(Delivery.subscriber_id == subscriber_id)
    ):
        ids.append(delivery_id)
        if error and (clean := scrub_text(error, needles)) != error:
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(error=clean)
                .execution_options(synchronize_session=False)
            )
    return ids


def _scrub_bounces(
    session: Session, digest: str, delivery_ids: list[int], needles: list[str]
) -> None:
    """Bounces keep the HMAC; their diagnostic loses what the ingest scrub could not know
    (a bare local part, the name)."""
    rows = session.scalars(
        select(Bounce).where(or_(Bounce.email_hmac == digest, Bounce.delivery_id.in_(delivery_ids)))
    )
    for bounce in rows:
        bounce.diagnostic = scrub_text(bounce.diagnostic, needles)[:500]


def _scrub_suppression(session: Session, digest: str, needles: list[str]) -> None:
    row = session.scalar(select(Suppression).where(Suppression.email_hmac == digest))
    if row is not None and row.detail:
        row.detail = scrub_text(row.detail, needles)
