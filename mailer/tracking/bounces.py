"""Recording bounces and complaints: the evidence row, the suppression, the profile count.

What suppresses (blocks all mail to the address, via `mailer.delivery.suppressions`):
- a hard bounce (the address does not exist or is disabled),
- a complaint ("this is spam": the person told their provider they do not want our mail),
- soft bounces on the last `SOFT_BOUNCE_LIMIT` messages sent to a subscriber in a row, with no
  human open or click on any of them: an address that has been "temporarily" failing for that
  long is gone for practical purposes, and mailing it hurts the sender's reputation.
A single soft bounce (full mailbox, greylisting, a provider's temporary block) never does.

Hard and soft bounces count on `Subscriber.bounce_count`; complaints do not (they are not
bounces). No consent event is written: suppression stops mail on its own, and a complaint is
not a withdrawal the person made on our pages.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from email_validator import EmailNotValidError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.campaigns.models import Delivery, DeliveryStatus
from mailer.database import utcnow
from mailer.delivery import suppressions
from mailer.delivery.models import SuppressionReason
from mailer.pseudonyms import keyed
from mailer.subscribers.models import Subscriber
from mailer.subscribers.schemas import normalise_email
from mailer.tracking.models import Bounce, BounceKind, BounceSource

SOFT_BOUNCE_LIMIT = 5

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_BASIC = re.compile(r"(?<![\d.])([245])(\d\d)(?![\d.])")
# Permanent (5.x.x) replies that are about the message or the sender, not the address:
# mailbox full, message too big, routing loop, delivery time expired, and every 5.7.x
# (policy: spam filters, reputation blocks, DMARC). Suppressing on those would drop good
# addresses en masse the day a provider blocks us.
_NOT_THE_ADDRESS = {("2", "2"), ("3", "4"), ("4", "6"), ("4", "7")}
_ADDRESS_LIKE = re.compile(r"[^\s<>()\[\]\"';,:]+@[^\s<>()\[\]\"';,]+")
DIAGNOSTIC_MAX = 500
STATUS_MAX = 16


def kind_for_status(status: str, action: str = "failed") -> BounceKind | None:
    """The kind of bounce an RFC 3464 Action and an RFC 3463 status (or bare SMTP code) mean.

    None when it is no failure (delivered, relayed, expanded, 2.x.x). `failed` with 5.x.x is
    hard except where the status is about the message or sender (see `_NOT_THE_ADDRESS`);
    4.x.x, or `delayed`, is soft. Callers with a 5xx SMTP reply in hand can use this too.
    """
    action = (action or "failed").strip().lower()
    if action in {"delivered", "relayed", "expanded"}:
        return None
    if action == "delayed":
        return BounceKind.SOFT
    enhanced = _ENHANCED.search(status or "")
    if enhanced:
        klass, subject, detail = enhanced.groups()
        if klass == "2":
            return None
        if klass == "4" or subject == "7" or (subject, detail) in _NOT_THE_ADDRESS:
            return BounceKind.SOFT
        return BounceKind.HARD
    basic = _BASIC.search(status or "")
    if basic:
        klass, rest = basic.groups()
        if klass == "2":
            return None
        return BounceKind.SOFT if klass == "4" or rest == "52" else BounceKind.HARD
    return BounceKind.HARD if action == "failed" else None


def status_code(text: str) -> str:
    """The RFC 3463 status ("5.1.1") in `text`, else the SMTP reply code ("550"), else ""."""
    enhanced = _ENHANCED.search(text or "")
    if enhanced:
        return ".".join(enhanced.groups())
    basic = _BASIC.search(text or "")
    return "".join(basic.groups()) if basic else ""


def scrub(text: str, limit: int = DIAGNOSTIC_MAX) -> str:
    """One line, addresses replaced by `<address>`, clipped: what a diagnostic may keep."""
    text = _ADDRESS_LIKE.sub("<address>", text or "")
    return " ".join(text.split())[:limit]


def record_bounce(
    session: Session,
    *,
    delivery_id: int | None,
    email: str | None,
    kind: BounceKind,
    source: BounceSource,
    status: str,
    detail: str,
    occurred_at: datetime | None = None,
) -> Bounce:
    """Record a bounce or complaint, suppress the address when it calls for it, count it.

    Who bounced: the delivery's subscriber when `delivery_id` names one (the delivery is
    authenticated, a report's recipient may be a forwarding address or redacted); else
    `email`. Flushes and does not commit: the caller commits (the SMTP sender together with
    the delivery's own status). Rerunning is safe: one row per delivery and kind (or, with no
    delivery, per address, kind, source, status and time), and a repeat returns the first
    row without counting or suppressing again.
    """
    bounce, _new = record(
        session,
        delivery_id=delivery_id,
        email=email,
        kind=kind,
        source=source,
        status=status,
        detail=detail,
        occurred_at=occurred_at,
    )
    return bounce


def record_smtp_refusal(
    session: Session,
    *,
    delivery_id: int,
    email: str | None,
    code: int | None,
    detail: str,
    campaign_id: int | None = None,
    subscriber_id: int | None = None,
) -> Bounce | None:
    """A refusal during our own SMTP session: kind and status from the reply itself
    (`kind_for_status`: 5xx hard unless it is about the message or sender, 4xx soft).

    `campaign_id` and `subscriber_id` are accepted for the caller's convenience; the delivery
    row is what counts. Returns None for a reply that is no failure. Flushes, does not commit.
    """
    del campaign_id, subscriber_id
    enhanced = _ENHANCED.search(detail or "")
    status = ".".join(enhanced.groups()) if enhanced else str(code or "") or status_code(detail)
    kind = kind_for_status(status or "5.0.0")
    if kind is None:
        return None
    return record_bounce(
        session,
        delivery_id=delivery_id,
        email=email,
        kind=kind,
        source=BounceSource.SMTP,
        status=status,
        detail=detail,
    )


def record(
    session: Session,
    *,
    delivery_id: int | None,
    email: str | None,
    kind: BounceKind,
    source: BounceSource,
    status: str,
    detail: str,
    occurred_at: datetime | None = None,
) -> tuple[Bounce, bool]:
    """`record_bounce`, also saying whether the row is new (False: a repeat)."""
    occurred_at = occurred_at or utcnow()
    delivery = _lock_delivery(session, delivery_id) if delivery_id is not None else None
    subscriber = (
        session.get(Subscriber, delivery.subscriber_id)
        if delivery is not None and delivery.subscriber_id is not None
        else None
    )
    address = subscriber.email if subscriber is not None else _normalised(email)
    if subscriber is None and address:
        subscriber = session.scalar(select(Subscriber).where(Subscriber.email == address))
    digest = keyed(session, address) if address else None
    fingerprint = _fingerprint(delivery, digest, kind, source, status, occurred_at)
    existing = session.scalar(select(Bounce).where(Bounce.fingerprint == fingerprint))
    if existing is not None:
        return existing, False

    diagnostic = scrub(detail)
    bounce = Bounce(
        fingerprint=fingerprint,
        occurred_at=occurred_at,
        kind=kind,
        source=source,
        delivery_id=delivery.id if delivery is not None else None,
        campaign_id=delivery.campaign_id if delivery is not None else None,
        email_hmac=digest,
        status=(status or "")[:STATUS_MAX],
        diagnostic=diagnostic,
        suppressed=False,
    )
    session.add(bounce)
    if kind is not BounceKind.COMPLAINT and subscriber is not None:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == subscriber.id)
            .values(bounce_count=Subscriber.bounce_count + 1)
        )
    session.flush()
    reason = _suppression(session, kind, subscriber)
    if reason is not None and address:
        label = "complaint" if kind is BounceKind.COMPLAINT else f"{kind.value} bounce"
        note = f"{label} ({source.value}) {bounce.status}: {diagnostic}".strip(" :")
        suppressions.add(session, address, reason, note)
        bounce.suppressed = True
        session.flush()
    return bounce, True


def _suppression(
    session: Session, kind: BounceKind, subscriber: Subscriber | None
) -> SuppressionReason | None:
    if kind is BounceKind.HARD:
        return SuppressionReason.HARD_BOUNCE
    if kind is BounceKind.COMPLAINT:
        return SuppressionReason.COMPLAINT
    if subscriber is not None and _soft_bounced_in_a_row(session, subscriber.id):
        return SuppressionReason.HARD_BOUNCE
    return None


def _soft_bounced_in_a_row(session: Session, subscriber_id: int) -> bool:
    """The last `SOFT_BOUNCE_LIMIT` messages to this subscriber all bounced, none was read."""
    recent = session.execute(
        select(Delivery.id, Delivery.opened_at, Delivery.clicked_at)
        .where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.FAILED]),
        )
        .order_by(Delivery.id.desc())
        .limit(SOFT_BOUNCE_LIMIT)
    ).all()
    if len(recent) < SOFT_BOUNCE_LIMIT or any(r.opened_at or r.clicked_at for r in recent):
        return False
    bounced = set(
        session.scalars(
            select(Bounce.delivery_id).where(
                Bounce.delivery_id.in_([r.id for r in recent]),
                Bounce.kind.in_([BounceKind.SOFT, BounceKind.HARD]),
            )
        )
    )
    return len(bounced) == SOFT_BOUNCE_LIMIT


def _lock_delivery(session: Session, delivery_id: int) -> Delivery | None:
    """The delivery, locked for this transaction (no-op UPDATE, as `subscribers.status.lock`
    does): two reports of the same bounce at once queue up and the second finds the first."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(id=Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return session.get(Delivery, delivery_id)


def _normalised(email: str | None) -> str | None:
    if not email:
        return None
    try:
        return normalise_email(email.strip())
    except EmailNotValidError:
        return None


def _fingerprint(
    delivery: Delivery | None,
    digest: str | None,
    kind: BounceKind,
    source: BounceSource,
    status: str,
    occurred_at: datetime,
) -> str:
    if delivery is not None:
        key = f"d:{delivery.id}:{kind.value}"
    else:
        key = f"a:{digest}:{kind.value}:{source.value}:{status}:{occurred_at.isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()
