"""Sending the system emails of the visitor journey: confirmation, already-subscribed, welcome."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.consent.models import ConsentEvent
from mailer.database import utcnow
from mailer.delivery.mime import Envelope
from mailer.delivery.models import (
    MessageKind,
    MessageStatus,
    OutboundMessage,
    Suppression,
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


def send(session: Session, message_id: int, sender: Sender, links: Links) -> MessageStatus | None:
    """Send one pending system email.

    Safe to rerun: a message that is no longer pending is left alone. A permanent refusal fails
    the message and suppresses the address; a temporary one is recorded and re-raised so that
    RQ retries with back-off. Commits.
    """
    message = session.get(OutboundMessage, message_id)
    if message is None or message.status is not MessageStatus.PENDING:
        return None
    subscriber = session.get(Subscriber, message.subscriber_id)
    if subscriber is None:
        return None
    if session.scalar(select(Suppression.id).where(Suppression.email == subscriber.email)):
        return _finish(session, message, MessageStatus.SKIPPED, "address is suppressed")

    event = session.get(ConsentEvent, message.consent_event_id)
    topic_slugs = list(event.topics) if event else []
    if message.kind is MessageKind.CONFIRMATION:
        pending = {
            s.topic.slug for s in subscriber.subscriptions if s.status is SubscriptionStatus.PENDING
        }
        if not pending & set(topic_slugs):
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
    message.attempts += 1
    try:
        sender.send(envelope, rendered.text, rendered.html)
    except SendError as exc:
        if exc.permanent:
            _suppress(session, subscriber.email, str(exc))
            return _finish(session, message, MessageStatus.FAILED, str(exc))
        message.error = str(exc)[:2000]
        session.commit()
        log.warning("temporary failure sending message %s: %s", message.id, exc)
        raise
    message.sent_at = utcnow()
    return _finish(session, message, MessageStatus.SENT, None)


def _finish(
    session: Session, message: OutboundMessage, status: MessageStatus, error: str | None
) -> MessageStatus:
    message.status = status
    message.error = error[:2000] if error else None
    session.commit()
    return status


def _suppress(session: Session, email: str, detail: str) -> None:
    if session.scalar(select(Suppression.id).where(Suppression.email == email)) is None:
        session.add(Suppression(email=email, reason=SuppressionReason.HARD_BOUNCE, detail=detail))


def lost_ids(session: Session, older_than_seconds: int = 300) -> list[int]:
    """Messages never tried after a while: their job was lost (Redis down at enqueue, or
    Redis data lost). Ones with attempts are in RQ's retry schedule and are left alone."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return list(
        session.scalars(
            select(OutboundMessage.id).where(
                OutboundMessage.status == MessageStatus.PENDING,
                OutboundMessage.attempts == 0,
                OutboundMessage.created_at < cutoff,
            )
        )
    )
