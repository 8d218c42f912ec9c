"""What the sender writes once the SMTP server has answered for one message.

The answer (`mailer.delivery.pool.Result`) decides the delivery's next state:
- accepted: `sent`. Usually not written here but by `marks.Marks.step`, in the one statement
  that also marks the next message `sending`; `write` covers the rest (the last message of a
  page, or one whose outcome must be committed before a wait).
- refused for good (5xx): `failed`, and the refusal is recorded as a bounce, which counts on
  the subscriber and, when it calls for it, suppresses the address (`mailer.tracking.bounces`).
- refused for now (4xx, trouble before the body was sent): back to `pending` with a backoff
  (`backoff`), until `send_max_attempts` tries have failed; then `failed`.
- lost after the body was sent: `unknown`. It may have been delivered, so it is never resent.

Every write is fenced like the rest of the sender's: it changes the delivery only while the
row still carries the sender's claim token and is `sending`.

Who commits: the caller (`write` adds to the session and flushes the bounce, nothing more).
Rerunning it for the same answer is safe: the fence leaves the delivery as the first run left
it, and a repeated bounce is neither counted nor suppressed again.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from mailer.campaigns.models import Delivery, DeliveryStatus
from mailer.config import Settings
from mailer.database import utcnow
from mailer.delivery.pool import Outcome, Result

# Temporary failures: seconds before the next try, by attempt number.
BACKOFF = (30, 120, 600, 1800, 3600, 7200)

# One message's answer: (delivery id, attempts including this one, recipient, SMTP result).
Answer = tuple[int, int, object, Result]


def backoff(attempt: int) -> timedelta:
    return timedelta(seconds=BACKOFF[min(max(attempt, 1), len(BACKOFF)) - 1])


def write(
    session: Session, settings: Settings, campaign_id: int, claim: str, answer: Answer
) -> str:
    """Record one message's outcome in the session (not committed). Returns what the sender
    counts it as: "sent", "unknown", "failed" or "retry"."""
    delivery_id, attempts, recipient, result = answer
    mine = (
        Delivery.id == delivery_id,
        Delivery.claim == claim,
        Delivery.status == DeliveryStatus.SENDING,
    )
    now = utcnow()
    if result.outcome is Outcome.SENT:
        values: dict[str, object] = {
            "status": DeliveryStatus.SENT,
            "sent_at": now,
            "error": None,
        }
        counted = "sent"
    elif result.outcome is Outcome.UNKNOWN:
        values = {"status": DeliveryStatus.UNKNOWN, "error": result.detail[:1000]}
        counted = "unknown"
    elif result.outcome is Outcome.PERMANENT:
        values = {"status": DeliveryStatus.FAILED, "error": result.detail[:1000]}
        counted = "failed"
        _bounce(session, campaign_id, delivery_id, recipient, result)
    elif attempts >= settings.send_max_attempts:
        values = {
            "status": DeliveryStatus.FAILED,
            "error": f"gave up after {attempts} temporary failures: {result.detail}"[:1000],
        }
        counted = "failed"
    else:
        values = {
            "status": DeliveryStatus.PENDING,
            "claim": None,
            "claimed_at": None,
            "retry_at": now + backoff(attempts),
            "error": result.detail[:1000],
        }
        counted = "retry"
    session.execute(
        update(Delivery).where(*mine).values(**values).execution_options(synchronize_session=False)
    )
    return counted


def _bounce(
    session: Session, campaign_id: int, delivery_id: int, recipient: object, result: Result
) -> None:
    from mailer.tracking import bounces

    bounces.record_smtp_refusal(
        session,
        delivery_id=delivery_id,
        campaign_id=campaign_id,
        subscriber_id=recipient.subscriber_id,  # type: ignore[attr-defined]
        email=recipient.email,  # type: ignore[attr-defined]
        code=result.code,
        detail=result.detail,
    )
