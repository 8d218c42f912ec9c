"""Confirming: the second half of double opt-in. The link in a confirmation email activates
the topics its request asked for (one "confirmed" event, one welcome); an expired link can ask
for a fresh confirmation, under the same one-email-per-window rule as sign-ups
(`mailer.subscribers.signup`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from mailer import tasks
from mailer.consent import ledger
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.delivery.models import MessageKind, OutboundMessage
from mailer.subscribers import signup, status
from mailer.subscribers.models import Form, FormVersion, SubscriptionStatus


@dataclass(frozen=True)
class ConfirmOutcome:
    subscriber_id: int
    confirmed_topics: list[str]  # empty when nothing was left to confirm
    active: bool  # the request's topics are active now (confirmed now or before)
    welcome_message_id: int | None


class NotConfirmable(LookupError):
    """The message behind the token is gone or is not a confirmation."""


def confirm(session: Session, message_id: int, visit: ledger.Visit, domain: str) -> ConfirmOutcome:
    """Activate the pending topics of the request the confirmation email was sent for.

    Takes the subscriber's lock first, so confirming twice (even at the same moment) writes one
    event and queues one welcome. Commits (or rolls back when there was nothing to do).
    """
    message = session.get(OutboundMessage, message_id)
    if message is None or message.kind is not MessageKind.CONFIRMATION:
        raise NotConfirmable(message_id)
    request_event = session.get(ConsentEvent, message.consent_event_id)
    subscriber = status.lock(session, message.subscriber_id)
    if request_event is None or subscriber is None:
        session.rollback()
        raise NotConfirmable(message_id)

    now = utcnow()
    wanted = set(request_event.topics)
    confirmed = []
    for sub in subscriber.subscriptions:
        if sub.topic.slug in wanted and sub.status is SubscriptionStatus.PENDING:
            sub.status = SubscriptionStatus.ACTIVE
            sub.confirmed_at = now
            confirmed.append(sub.topic.slug)
    if not confirmed:
        active = any(
            s.topic.slug in wanted and s.status is SubscriptionStatus.ACTIVE
            for s in subscriber.subscriptions
        )
        session.rollback()
        return ConfirmOutcome(subscriber.id, [], active, None)

    first_time = subscriber.confirmed_at is None
    if first_time:
        subscriber.confirmed_at = now
    status.refresh(subscriber)
    version = (
        session.get(FormVersion, request_event.form_version_id)
        if request_event.form_version_id
        else None
    )
    ledger.record(
        session,
        ConsentEventType.CONFIRMED,
        subscriber,
        topics=confirmed,
        source=ConsentSource.FORM,
        visit=visit,
        form_version=version,
        evidence={
            "method": "double_opt_in",
            "request_event_id": request_event.id,
            "confirmation_message_id": message.message_id,
        },
    )
    welcome = None
    form = session.get(Form, request_event.form_id) if request_event.form_id else None
    if first_time and form is not None and form.welcome_enabled:
        welcome = _queue(
            session, MessageKind.WELCOME, subscriber.id, request_event.id, form.id, domain
        )
    session.commit()
    return ConfirmOutcome(subscriber.id, confirmed, True, welcome.id if welcome else None)


def resend_confirmation(
    session: Session, message_id: int, window_seconds: int, domain: str
) -> int | None:
    """A fresh confirmation for the same request, when its link expired.

    Nothing is sent if nothing is pending any more or the address had mail within the window;
    the caller answers the same either way. Commits.
    """
    old = session.get(OutboundMessage, message_id)
    if old is None or old.kind is not MessageKind.CONFIRMATION:
        return None
    event = session.get(ConsentEvent, old.consent_event_id)
    subscriber = status.lock(session, old.subscriber_id)
    if subscriber is None or event is None:
        session.rollback()
        return None
    wanted = set(event.topics)
    pending = [
        s
        for s in subscriber.subscriptions
        if s.status is SubscriptionStatus.PENDING and s.topic.slug in wanted
    ]
    window = timedelta(seconds=window_seconds)
    if not pending or signup.claim_slot(subscriber, window, utcnow()) is not None:
        session.rollback()
        return None
    message = _queue(
        session, MessageKind.CONFIRMATION, subscriber.id, event.id, old.form_id, domain
    )
    session.commit()
    return message.id


def _queue(
    session: Session,
    kind: MessageKind,
    subscriber_id: int,
    event_id: int,
    form_id: int | None,
    domain: str,
) -> OutboundMessage:
    """A system email row, sent once the caller's transaction commits."""
    message = OutboundMessage(
        kind=kind,
        subscriber_id=subscriber_id,
        consent_event_id=event_id,
        form_id=form_id,
        message_id=signup.new_message_id(domain),
    )
    session.add(message)
    session.flush()
    tasks.send_after_commit(session, message.id)
    return message
