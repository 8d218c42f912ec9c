"""Signing up and confirming: double opt-in, with every step written to the consent ledger."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer import tasks
from mailer.consent import ledger
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.delivery import suppressions
from mailer.delivery.models import MessageKind, MessageStatus, OutboundMessage
from mailer.subscribers import status
from mailer.subscribers.models import (
    Form,
    FormVersion,
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


class UnknownFormVersion(ValueError):
    """The consent text the visitor says they saw is not one of this form's versions."""


@dataclass(frozen=True)
class SignupRequest:
    form_id: int
    email: str  # already validated and normalised
    name: str  # kept only if the form asks for a name
    topic_slugs: list[str]  # may be empty only when the form has a single topic
    visit: ledger.Visit
    # The consent text version the visitor was shown; None: the form's current version.
    form_version_id: int | None = None
    evidence: dict[str, str | None] = field(default_factory=dict)  # channel, origin
    # Where the request came from: a form, or an import without evidence of consent.
    source: ConsentSource = ConsentSource.FORM


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
    concurrent signup for the same new address it retries once. At most one email per address
    per window: a confirmation asked for inside the window is sent when the window ends.
    """
    try:
        return _request(session, req, window_seconds, domain)
    except IntegrityError:
        session.rollback()
        return _request(session, req, window_seconds, domain)


def _version(session: Session, form: Form, version_id: int | None) -> FormVersion:
    if version_id is None:
        return form.current_version
    version = session.get(FormVersion, version_id)
    if version is None or version.form_id != form.id:
        raise UnknownFormVersion(version_id)
    return version


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
    chosen = list(dict.fromkeys(req.topic_slugs))  # in order, each once
    topics = [by_slug[s] for s in chosen] if chosen else list(form.topics)
    version = _version(session, form, req.form_version_id)

    found = session.scalar(select(Subscriber.id).where(Subscriber.email == req.email))
    # Locked before use; None when an erasure removed the profile in between: then this is a
    # new sign-up with fresh consent, as it would be a moment later.
    subscriber = status.lock(session, found) if found is not None else None
    if subscriber is None:
        subscriber = Subscriber(
            email=req.email,
            name=req.name if form.ask_name else "",
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
        source=req.source,
        visit=req.visit,
        form_version=version,
        evidence={"form_slug": form.slug, "form_version": version.version, **req.evidence},
    )

    message = None
    kind = MessageKind.CONFIRMATION if to_confirm else MessageKind.ALREADY_SUBSCRIBED
    if not suppressions.is_blocked(session, req.email):
        send_at = _mail_slot(session, subscriber.id, window)
        if send_at is None or (
            kind is MessageKind.CONFIRMATION and not _deferred(session, subscriber.id, send_at)
        ):
            message = OutboundMessage(
                kind=kind,
                subscriber_id=subscriber.id,
                consent_event_id=event.id,
                form_id=form.id,
                message_id=new_message_id(domain),
                send_after=send_at,
            )
            session.add(message)
            session.flush()
            tasks.send_after_commit(session, message.id, at=send_at)
    session.commit()
    return SignupOutcome(subscriber.id, event.id, message.id if message else None)


def _mail_slot(session: Session, subscriber_id: int, window: int) -> datetime | None:
    """Claim this window's one email for the address: None if claimed now, else when the
    current window ends (the time a deferred confirmation may go out)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=window)
    result = session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .where(
            (Subscriber.confirmation_sent_at.is_(None)) | (Subscriber.confirmation_sent_at < cutoff)
        )
        .values(confirmation_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        return None
    last = session.scalar(
        select(Subscriber.confirmation_sent_at).where(Subscriber.id == subscriber_id)
    )
    return last + timedelta(seconds=window)


def _deferred(session: Session, subscriber_id: int, send_at: datetime) -> bool:
    """Whether a deferred confirmation already waits for this address; if not, reserve the
    next window for the one the caller is about to defer."""
    waiting = session.scalar(
        select(OutboundMessage.id).where(
            OutboundMessage.subscriber_id == subscriber_id,
            OutboundMessage.kind == MessageKind.CONFIRMATION,
            OutboundMessage.status == MessageStatus.PENDING,
            OutboundMessage.send_after.is_not(None),
        )
    )
    if waiting is not None:
        return True
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .values(confirmation_sent_at=send_at)
        .execution_options(synchronize_session=False)
    )
    return False


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
    if not pending or _mail_slot(session, subscriber.id, window_seconds) is not None:
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
