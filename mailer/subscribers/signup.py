"""Signing up: the first half of double opt-in, with every request written to the consent ledger.

Sign-up requests are written by `write_requests`, one or many in one transaction: the form's
sign-ups arrive through the intake stream and the workers write them in batches
(`mailer.subscribers.drain`); an import writes one at a time (`request_subscription`). Both
go through the same steps, in order, so a batch behaves as its requests made one after another.
The second half, the confirmation link, is `mailer.subscribers.confirmation`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from mailer import tasks
from mailer.consent import chain, ledger
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.delivery import suppressions
from mailer.delivery.models import (
    MessageKind,
    MessageStatus,
    OutboundMessage,
)
from mailer.subscribers import status
from mailer.subscribers.models import (
    Form,
    FormVersion,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Topic,
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
    # When the person asked (the intake writes a request seconds after it); None: now.
    occurred_at: datetime | None = None
    # The intake stream entry the request was accepted as; unique on its consent event.
    intake_id: str | None = None


@dataclass(frozen=True)
class SignupOutcome:
    subscriber_id: int
    event_id: int
    message_id: int | None  # None: nothing mailed (throttled or suppressed)


@dataclass(frozen=True)
class Plan:
    """A request with its rows resolved: what `write_requests` writes."""

    req: SignupRequest
    form: Form
    version: FormVersion
    topics: list[Topic]  # in the order asked for, each once


def new_message_id(domain: str) -> str:
    return f"{uuid.uuid4().hex}@{domain}"


def choose_topics(form_topics: Sequence[str], asked: Sequence[str], form_slug: str) -> list[str]:
    """The topic slugs a request signs up for: those ticked, in order and each once, or the
    form's only topic when none was ticked. Raises `UnknownTopics` or `NoTopicChosen`."""
    unknown = sorted(set(asked) - set(form_topics))
    if unknown:
        raise UnknownTopics(unknown)
    if not asked and len(form_topics) > 1:
        raise NoTopicChosen(form_slug)
    return list(dict.fromkeys(asked)) or list(form_topics)


def load_forms(session: Session, form_ids: Iterable[int]) -> dict[int, Form]:
    """Forms by id with their topics and versions, in two queries whatever their number."""
    rows = session.scalars(
        select(Form)
        .where(Form.id.in_(sorted(set(form_ids))))
        .options(selectinload(Form.topics), selectinload(Form.versions))
    )
    return {form.id: form for form in rows}


def plan(form: Form | None, req: SignupRequest) -> Plan:
    """Check a request against its form as it is now. Raises `LookupError` (no such form),
    `UnknownTopics`, `NoTopicChosen` or `UnknownFormVersion`."""
    if form is None:
        raise LookupError(f"form {req.form_id} does not exist")
    by_slug = {t.slug: t for t in form.topics}
    chosen = choose_topics(list(by_slug), req.topic_slugs, form.slug)
    if req.form_version_id is None:
        version = form.current_version
    else:
        version = next((v for v in form.versions if v.id == req.form_version_id), None)
        if version is None:
            raise UnknownFormVersion(req.form_version_id)
    return Plan(req, form, version, [by_slug[s] for s in chosen])


def request_subscription(
    session: Session, req: SignupRequest, window_seconds: int, domain: str
) -> SignupOutcome:
    """Record the request and queue a confirmation (or an "already subscribed" notice).

    Active subscriptions are never touched, and the caller answers the same whatever happened,
    so a form cannot be used to find out who is subscribed. Commits; on a race with a
    concurrent signup for the same new address it retries once. At most one email per address
    per window: a confirmation asked for inside the window is sent when the window ends.
    """
    for attempt in range(2):
        try:
            checked = plan(session.get(Form, req.form_id), req)
            (outcome,) = write_requests(session, [checked], window_seconds, domain)
            session.commit()
            return outcome
        except IntegrityError:
            session.rollback()
            if attempt:
                raise
    raise AssertionError("unreachable")


def write_requests(
    session: Session, plans: Sequence[Plan], window_seconds: int, domain: str
) -> list[SignupOutcome]:
    """Write sign-up requests in order, as if each came after the one before: the subscriber
    (created, or found and locked), pending subscriptions for topics not already active, the
    "requested" consent event (at the request's own time), and the confirmation or "already
    subscribed" email under the one-email-per-address-per-window rule, unless suppressed.

    The ledger head is taken once for the whole batch. Flushes, does not commit: the caller
    commits, and the emails are enqueued only then. An IntegrityError means a concurrent
    writer created one of the addresses (or wrote one of the intake entries): roll back and
    run the batch again.
    """
    if not plans:
        return []
    emails = sorted({p.req.email for p in plans})
    people = _lock(session, emails)
    waiting = _deferred_confirmations(session, [s.id for s in people.values()])
    blocked = suppressions.blocked(session, emails)

    steps: list[tuple[Plan, Subscriber, list[str]]] = []
    for p in plans:
        subscriber = people.get(p.req.email)
        if subscriber is None:
            subscriber = people[p.req.email] = _new_subscriber(session, p)
        steps.append((p, subscriber, _ask(session, subscriber, p.topics)))
        status.refresh(subscriber)
    session.flush()  # ids for the new subscribers

    events = chain.append_many(session, [_requested(p, person) for p, person, _ in steps])

    now = utcnow()
    window = timedelta(seconds=window_seconds)
    outcomes, mail = [], []
    for (p, subscriber, to_confirm), event in zip(steps, events, strict=True):
        kind = MessageKind.CONFIRMATION if to_confirm else MessageKind.ALREADY_SUBSCRIBED
        message = None
        if p.req.email not in blocked:
            send_at = claim_slot(subscriber, window, now)
            # A confirmation asked for inside the window goes out when it ends: one waits.
            defer = kind is MessageKind.CONFIRMATION and subscriber.id not in waiting
            if send_at is not None and defer:
                waiting.add(subscriber.id)
                subscriber.confirmation_sent_at = send_at  # that next window is taken too
            if send_at is None or defer:
                message = OutboundMessage(
                    kind=kind,
                    subscriber_id=subscriber.id,
                    consent_event_id=event.id,
                    form_id=p.form.id,
                    message_id=new_message_id(domain),
                    send_after=send_at,
                )
                mail.append(message)
        outcomes.append((subscriber, event, message))
    session.add_all(mail)
    session.flush()
    tasks.send_many_after_commit(session, [(m.id, m.send_after) for m in mail])
    return [
        SignupOutcome(person.id, event.id, message.id if message else None)
        for person, event, message in outcomes
    ]


def _lock(session: Session, emails: list[str]) -> dict[str, Subscriber]:
    """Lock the known addresses for this transaction (a no-op UPDATE, as `status.lock` does:
    row locks on PostgreSQL, the write lock on SQLite) and load them with their subscriptions
    fresh. An address erased in between is simply not found: a new sign-up, fresh consent."""
    session.execute(
        update(Subscriber)
        .where(Subscriber.email.in_(emails))
        .values(id=Subscriber.id)
        .execution_options(synchronize_session=False)
    )
    rows = session.scalars(
        select(Subscriber)
        .where(Subscriber.email.in_(emails))
        .options(selectinload(Subscriber.subscriptions))
        .execution_options(populate_existing=True)
    )
    return {s.email: s for s in rows}


def _new_subscriber(session: Session, p: Plan) -> Subscriber:
    subscriber = Subscriber(
        email=p.req.email,
        name=p.req.name if p.form.ask_name else "",
        locale=p.req.visit.locale or p.form.locale or "en",
        attributes={},
        source_form_id=p.form.id,
    )
    session.add(subscriber)
    return subscriber


def _ask(session: Session, subscriber: Subscriber, topics: list[Topic]) -> list[str]:
    """Subscriptions pending for `topics` (active ones untouched); the slugs now pending."""
    existing = {
        s.topic_id if s.topic_id is not None else s.topic.id: s for s in subscriber.subscriptions
    }
    to_confirm = []
    for topic in topics:
        sub = existing.get(topic.id)
        if sub is None:
            sub = Subscription(subscriber=subscriber, topic=topic)
            session.add(sub)
        elif sub.status is SubscriptionStatus.ACTIVE:
            continue
        sub.status = SubscriptionStatus.PENDING
        to_confirm.append(topic.slug)
    return to_confirm


def _requested(p: Plan, subscriber: Subscriber) -> ConsentEvent:
    """The "requested" event, with the evidence as captured when the person asked."""
    visit, version = p.req.visit, p.version
    return ConsentEvent(
        type=ConsentEventType.REQUESTED,
        subscriber_id=subscriber.id,
        email=subscriber.email,
        topics=sorted(t.slug for t in p.topics),
        lawful_basis="consent",
        form_id=version.form_id,
        form_version_id=version.id,
        consent_text_sha256=version.consent_text_sha256,
        locale=visit.locale or subscriber.locale,
        source=p.req.source,
        ip=visit.ip,
        user_agent=visit.user_agent[:1000] if visit.user_agent else None,
        evidence={"form_slug": p.form.slug, "form_version": version.version, **p.req.evidence},
        actor=None,
        occurred_at=p.req.occurred_at or utcnow(),
        intake_id=p.req.intake_id,
    )


def claim_slot(subscriber: Subscriber, window: timedelta, now: datetime) -> datetime | None:
    """Claim this window's one email for the address (the row is locked): None if claimed
    now, else when the current window ends (the time a deferred confirmation may go out)."""
    last = subscriber.confirmation_sent_at
    if last is None or last < now - window:
        subscriber.confirmation_sent_at = now
        return None
    return last + window


def _deferred_confirmations(session: Session, subscriber_ids: list[int]) -> set[int]:
    """Who already has a confirmation waiting for the end of their window."""
    if not subscriber_ids:
        return set()
    return set(
        session.scalars(
            select(OutboundMessage.subscriber_id).where(
                OutboundMessage.subscriber_id.in_(subscriber_ids),
                OutboundMessage.kind == MessageKind.CONFIRMATION,
                OutboundMessage.status == MessageStatus.PENDING,
                OutboundMessage.send_after.is_not(None),
            )
        )
    )
