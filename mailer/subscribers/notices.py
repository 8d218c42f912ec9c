"""Sending the system emails of the visitor journey: confirmation, already-subscribed, welcome."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailer.consent.models import ConsentEvent
from mailer.database import utcnow
from mailer.delivery import suppressions
from mailer.delivery.mime import Envelope
from mailer.delivery.models import (
    MessageKind,
    MessageStatus,
    OutboundMessage,
    SuppressionReason,
)
from mailer.delivery.sender import Sender
from mailer.delivery.transport import SendError
from mailer.emails import rendering
from mailer.subscribers.links import Links
from mailer.subscribers.models import (
    Form,
    Subscriber,
    SubscriberStatus,
    SubscriptionStatus,
    Topic,
)

log = logging.getLogger(__name__)

TEMPLATES = {
    MessageKind.CONFIRMATION: "confirm",
    MessageKind.ALREADY_SUBSCRIBED: "already_subscribed",
    MessageKind.WELCOME: "welcome",
}
MAX_ATTEMPTS = 10  # across RQ retries and lost-job recoveries
LOST_AFTER = timedelta(minutes=5)  # never tried this long after it was due: its job was lost
STUCK_AFTER = timedelta(minutes=15)  # claimed this long ago and not finished: its worker died


def _claim(session: Session, message_id: int) -> bool:
    """Take the message for this worker, committed before any SMTP: two workers (or a
    re-enqueued job) never both send it."""
    result = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == message_id, OutboundMessage.status == MessageStatus.PENDING)
        .values(
            status=MessageStatus.SENDING,
            attempts=OutboundMessage.attempts + 1,
            claimed_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1


def send(
    session: Session, message_id: int, sender: Sender, links: Links, final_attempt: bool = False
) -> MessageStatus | None:
    """Send one pending system email.

    Safe to rerun and to run twice at once: only the run that claims the message sends it.
    A permanent refusal fails the message and suppresses the address; any other failure puts
    it back to pending and re-raises so that RQ retries with back-off, until `final_attempt`,
    which marks it failed. Commits.
    """
    if not _claim(session, message_id):
        return None
    message = session.get(OutboundMessage, message_id, populate_existing=True)
    try:
        return _deliver(session, message, sender, links)
    except SendError as exc:
        if exc.permanent:
            _suppress(session, message.subscriber_id, str(exc))
            return _finish(session, message, MessageStatus.FAILED, str(exc))
        _release(session, message, str(exc), final_attempt)
        log.warning("temporary failure sending message %s: %s", message.id, exc)
        raise
    except Exception as exc:
        session.rollback()
        message = session.get(OutboundMessage, message_id, populate_existing=True)
        _release(session, message, f"{type(exc).__name__}: {exc}", final_attempt)
        raise


def _deliver(
    session: Session, message: OutboundMessage, sender: Sender, links: Links
) -> MessageStatus:
    subscriber = session.get(Subscriber, message.subscriber_id)
    if subscriber is None:
        return _finish(session, message, MessageStatus.SKIPPED, "subscriber is gone")
    if suppressions.is_blocked(session, subscriber.email):
        return _finish(session, message, MessageStatus.SKIPPED, "address is suppressed")

    event = session.get(ConsentEvent, message.consent_event_id)
    topic_slugs = list(event.topics) if event else []
    if message.kind is MessageKind.CONFIRMATION:
        # Only what is still pending: "withdraw this request" must not touch active topics.
        pending = {
            s.topic.slug for s in subscriber.subscriptions if s.status is SubscriptionStatus.PENDING
        }
        topic_slugs = sorted(pending & set(topic_slugs))
        if not topic_slugs:
            return _finish(session, message, MessageStatus.SKIPPED, "nothing left to confirm")
    if message.kind is MessageKind.WELCOME and subscriber.status is not SubscriberStatus.ACTIVE:
        return _finish(session, message, MessageStatus.SKIPPED, "unsubscribed before the welcome")

    form = session.get(Form, message.form_id) if message.form_id else None
    topics = session.scalars(select(Topic).where(Topic.slug.in_(topic_slugs))).all()
    context: dict[str, Any] = {
        "name": subscriber.name,
        "topics": [t.name for t in topics],
        "form": form,
        "preferences_url": links.preferences(subscriber.id),
        "unsubscribe_url": links.unsubscribe(subscriber.id, topic_slugs, message.id),
        "gmail_tip": bool(form and form.welcome_gmail_tip),
    }
    if message.kind is MessageKind.CONFIRMATION:
        context["confirm_url"] = links.confirm(message.id)

    rendered = rendering.render(session, TEMPLATES[message.kind], subscriber.locale, context)
    envelope = Envelope(
        sender=sender.mail_from,
        to_email=subscriber.email,
        to_name=subscriber.name,
        subject=rendered.subject,
        message_id=message.message_id,
        unsubscribe_url=context["unsubscribe_url"],
        extra_headers={"X-Mailer-Message": str(message.id)},
    )
    sender.send(envelope, rendered.text, rendered.html)
    message.sent_at = utcnow()
    return _finish(session, message, MessageStatus.SENT, None)


def _finish(
    session: Session, message: OutboundMessage, status: MessageStatus, error: str | None
) -> MessageStatus:
    message.status = status
    message.error = error[:2000] if error else None
    session.commit()
    return status


def _release(session: Session, message: OutboundMessage, error: str, final: bool) -> None:
    """Back to pending for the next retry, or failed when no retry is left."""
    give_up = final or message.attempts >= MAX_ATTEMPTS
    _finish(session, message, MessageStatus.FAILED if give_up else MessageStatus.PENDING, error)


def _suppress(session: Session, subscriber_id: int, detail: str) -> None:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return
    suppressions.add(session, subscriber.email, SuppressionReason.HARD_BOUNCE, detail)


def recover_lost(session: Session) -> list[int]:
    """Messages whose job was lost (Redis down at enqueue, Redis data lost, a worker killed
    mid-send): put back to pending and return their ids to enqueue. Commits.

    Messages with a job in RQ's retry schedule are pending with attempts > 0 and not stuck,
    and are left alone. A message killed mid-send may go out twice; losing a confirmation
    is worse than sending it twice.
    """
    now = utcnow()
    due = OutboundMessage.send_after.is_(None) | (OutboundMessage.send_after < now - LOST_AFTER)
    never_tried = select(OutboundMessage.id).where(
        OutboundMessage.status == MessageStatus.PENDING,
        OutboundMessage.attempts == 0,
        OutboundMessage.created_at < now - LOST_AFTER,
        due,
    )
    ids = list(session.scalars(never_tried))
    stuck = session.scalars(
        select(OutboundMessage).where(
            OutboundMessage.status == MessageStatus.SENDING,
            OutboundMessage.claimed_at < now - STUCK_AFTER,
        )
    ).all()
    for message in stuck:
        if message.attempts >= MAX_ATTEMPTS:
            message.status, message.error = MessageStatus.FAILED, "gave up after a stuck send"
        else:
            message.status = MessageStatus.PENDING
            ids.append(message.id)
    session.commit()
    return ids
