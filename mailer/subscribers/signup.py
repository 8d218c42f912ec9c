"""Signing up and confirming: double opt-in, with every step written to the consent ledger."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer import tasks
from mailer.consent import ledger
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.delivery.models import MessageKind, OutboundMessage, Suppression
from mailer.subscribers import status
from mailer.subscribers.models import (
    Form,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)


class NoTopicChosen(ValueError):
    """A form with several topics was sent with none ticked: never assume "all of them"."""


class UnknownTopics(ValueError):
    def __init__(self, slugs: list[str]) -> None:
        super().__init__(", ".join(slugs))
        self.slugs = slugs


@dataclass(frozen=True)
class SignupRequest:
    form_id: int
    email: str  # already validated and normalised
    name: str
    topic_slugs: list[str]  # may be empty only when the form has a single topic
    visit: ledger.Visit


@dataclass(frozen=True)
class SignupOutcome:
    subscriber_id: int
    event_id: int
    message_id: int | None  # None: nothing mailed (throttled or suppressed)


def new_message_id(domain: str) -> str:
    return f"{uuid.uuid4().hex}@{domain}"


def request_subscription(
    session: Session, req: SignupRequest, window_seconds: int, domain: str
) -> SignupOutcome:
    """Record the request and queue a confirmation (or an "already subscribed" notice).

    Active subscriptions are never touched, and the caller answers the same whatever happened,
    so a form cannot be used to find out who is subscribed. Commits; on a race with a
    concurrent signup for the same new address it retries once. Rerunning is safe: at most one
    email per address per window.
    """
    try:
        return _request(session, req, window_seconds, domain)
    except IntegrityError:
        session.rollback()
        return _request(session, req, window_seconds, domain)


def _request(session: Session, req: SignupRequest, window: int, domain: str) -> SignupOutcome:
    form = session.get(Form, req.form_id)
    if form is None:
        raise LookupError(f"form {req.form_id} does not exist")
    by_slug = {t.slug: t for t in form.topics}
    unknown = sorted(set(req.topic_slugs) - set(by_slug))
    if unknown:
        raise UnknownTopics(unknown)
    if not req.topic_slugs and len(form.topics) > 1:
        raise NoTopicChosen(form.slug)
    topics = [by_slug[s] for s in req.topic_slugs] if req.topic_slugs else list(form.topics)
    version = form.current_version

    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == req.email))
    if subscriber is None:
        subscriber = Subscriber(
            email=req.email,
            name=req.name,
            locale=req.visit.locale or form.locale or "en",
            attributes={},
            source_form_id=form.id,
        )
        session.add(subscriber)
        session.flush()

    existing = {s.topic_id: s for s in subscriber.subscriptions}
    to_confirm: list[str] = []
    for topic in topics:
        sub = existing.get(topic.id)
        if sub is None:
            sub = Subscription(subscriber=subscriber, topic=topic)
            session.add(sub)
        elif sub.status is SubscriptionStatus.ACTIVE:
            continue
        sub.status = SubscriptionStatus.PENDING
        to_confirm.append(topic.slug)
    session.flush()
    status.refresh(subscriber)

    event = ledger.record(
        session,
        ConsentEventType.REQUESTED,
        subscriber,
        topics=[t.slug for t in topics],
        source=ConsentSource.FORM,
        visit=req.visit,
        form_version=version,
        evidence={"form_slug": form.slug, "form_version": version.version},
    )

    message = None
    suppressed = session.scalar(select(Suppression.id).where(Suppression.email == req.email))
    if suppressed is None and _claim_mail_slot(session, subscriber.id, window):
        kind = MessageKind.CONFIRMATION if to_confirm else MessageKind.ALREADY_SUBSCRIBED
        message = OutboundMessage(
            kind=kind,
            subscriber_id=subscriber.id,
            consent_event_id=event.id,
            form_id=form.id,
            message_id=new_message_id(domain),
        )
        session.add(message)
        session.flush()
        tasks.send_after_commit(session, message.id)
    session.commit()
    return SignupOutcome(subscriber.id, event.id, message.id if message else None)


def _claim_mail_slot(session: Session, subscriber_id: int, window: int) -> bool:
    """One confirmation per address per window, decided by one atomic UPDATE."""
    now = utcnow()
    result = session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .where(
            or_(
                Subscriber.confirmation_sent_at.is_(None),
                Subscriber.confirmation_sent_at < now - timedelta(seconds=window),
            )
        )
        .values(confirmation_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class ConfirmOutcome:
    subscriber_id: int
    confirmed_topics: list[str]  # empty when nothing was left to confirm
    welcome_message_id: int | None


class NotConfirmable(LookupError):
    """The message behind the token is gone or is not a confirmation."""


def confirm(session: Session, message_id: int, visit: ledger.Visit, domain: str) -> ConfirmOutcome:
    """Activate the pending topics of the request the confirmation email was sent for.

    Confirming twice is harmless: the second time nothing is pending, no event is written,
    and the caller shows the same page. Commits.
    """
    message = session.get(OutboundMessage, message_id)
    if message is None or message.kind is not MessageKind.CONFIRMATION:
        raise NotConfirmable(message_id)
    request_event = session.get(ConsentEvent, message.consent_event_id)
    subscriber = session.get(Subscriber, message.subscriber_id)
    if request_event is None or subscriber is None:
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
        return ConfirmOutcome(subscriber.id, [], None)

    first_time = subscriber.confirmed_at is None
    if first_time:
        subscriber.confirmed_at = now
    status.refresh(subscriber)
    ledger.record(
        session,
        ConsentEventType.CONFIRMED,
        subscriber,
        topics=confirmed,
        source=ConsentSource.FORM,
        visit=visit,
        form_version=_version(session, request_event),
        evidence={
            "method": "double_opt_in",
            "request_event_id": request_event.id,
            "confirmation_message_id": message.message_id,
        },
    )
    welcome = None
    form = session.get(Form, request_event.form_id) if request_event.form_id else None
    if first_time and form is not None and form.welcome_enabled:
        welcome = OutboundMessage(
            kind=MessageKind.WELCOME,
            subscriber_id=subscriber.id,
            consent_event_id=request_event.id,
            form_id=form.id,
            message_id=new_message_id(domain),
        )
        session.add(welcome)
        session.flush()
        tasks.send_after_commit(session, welcome.id)
    session.commit()
    return ConfirmOutcome(subscriber.id, confirmed, welcome.id if welcome else None)


def _version(session: Session, event: ConsentEvent):
    from mailer.subscribers.models import FormVersion

    return session.get(FormVersion, event.form_version_id) if event.form_version_id else None


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
    subscriber = session.get(Subscriber, old.subscriber_id)
    event = session.get(ConsentEvent, old.consent_event_id)
    if subscriber is None or event is None:
        return None
    pending = [
        s
        for s in subscriber.subscriptions
        if s.status is SubscriptionStatus.PENDING and s.topic.slug in set(event.topics)
    ]
    if not pending or not _claim_mail_slot(session, subscriber.id, window_seconds):
        session.rollback()
        return None
    message = OutboundMessage(
        kind=MessageKind.CONFIRMATION,
        subscriber_id=subscriber.id,
        consent_event_id=event.id,
        form_id=old.form_id,
        message_id=new_message_id(domain),
    )
    session.add(message)
    session.flush()
    tasks.send_after_commit(session, message.id)
    session.commit()
    return message.id
