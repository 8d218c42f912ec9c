"""Sending the system emails of the visitor journey: confirmation, already-subscribed, welcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, select, update
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
    Subscription,
    SubscriptionStatus,
    Topic,
)

log = logging.getLogger(__name__)

TEMPLATES = {
    MessageKind.CONFIRMATION: "confirm",
    MessageKind.ALREADY_SUBSCRIBED: "already_subscribed",
    MessageKind.WELCOME: "welcome",
}
# The table, not the mapped class: these per-email UPDATEs skip the ORM's bulk-update
# bookkeeping (none of the batch's rows are in the session).
_OUTBOUND = OutboundMessage.__table__
MAX_ATTEMPTS = 10  # across RQ retries and lost-job recoveries
LOST_AFTER = timedelta(minutes=5)  # never tried this long after it was due: its job was lost
STUCK_AFTER = timedelta(minutes=15)  # claimed this long ago and not finished: its worker died


@dataclass(frozen=True)
class _Message:
    id: int
    kind: MessageKind
    subscriber_id: int
    consent_event_id: int | None
    form_id: int | None
    message_id: str


@dataclass(frozen=True)
class _Person:
    email: str
    name: str
    locale: str
    active: bool
    pending: frozenset[str]  # slugs of topics still waiting for confirmation


@dataclass
class Batch:
    """Pending system emails and everything rendering them reads, loaded in a few queries.

    A batch of confirmations (`workers.jobs.send_messages`) read each message's subscriber,
    consent event, form, topics and suppression one query at a time: most of what an email
    cost the worker. The snapshot is taken when the batch starts, so a change in the second
    or so a batch takes (a topic confirmed, an address suppressed) is seen by the next batch;
    each message is still claimed on its own just before it is sent.
    """

    messages: dict[int, _Message] = field(default_factory=dict)
    people: dict[int, _Person] = field(default_factory=dict)
    event_topics: dict[int, list[str]] = field(default_factory=dict)
    gmail_tip: dict[int, bool] = field(default_factory=dict)  # by form id
    topic_names: list[tuple[str, str]] = field(default_factory=list)  # (slug, name) by id
    blocked: set[str] = field(default_factory=set)  # addresses

    @classmethod
    def load(
        cls,
        session: Session,
        message_ids: list[int],
        status: MessageStatus = MessageStatus.PENDING,
    ) -> Batch:
        """The messages among `message_ids` in `status` (pending: a batch about to start;
        sending: one message just claimed), and what they need. Reads only."""
        batch = cls()
        rows = session.execute(
            select(
                OutboundMessage.id,
                OutboundMessage.kind,
                OutboundMessage.subscriber_id,
                OutboundMessage.consent_event_id,
                OutboundMessage.form_id,
                OutboundMessage.message_id,
            ).where(
                OutboundMessage.id.in_(message_ids),
                OutboundMessage.status == status,
            )
        )
        batch.messages = {row.id: _Message(*row) for row in rows}
        if not batch.messages:
            return batch
        found = batch.messages.values()
        subscriber_ids = {m.subscriber_id for m in found}
        pending: dict[int, set[str]] = {i: set() for i in subscriber_ids}
        for subscriber_id, slug in session.execute(
            select(Subscription.subscriber_id, Topic.slug)
            .join(Topic, Topic.id == Subscription.topic_id)
            .where(
                Subscription.subscriber_id.in_(subscriber_ids),
                Subscription.status == SubscriptionStatus.PENDING,
            )
        ):
            pending[subscriber_id].add(slug)
        for row in session.execute(
            select(
                Subscriber.id,
                Subscriber.email,
                Subscriber.name,
                Subscriber.locale,
                Subscriber.status,
            ).where(Subscriber.id.in_(subscriber_ids))
        ):
            active = row.status is SubscriberStatus.ACTIVE
            batch.people[row.id] = _Person(
                row.email, row.name, row.locale, active, frozenset(pending[row.id])
            )
        event_ids = {m.consent_event_id for m in found if m.consent_event_id is not None}
        batch.event_topics = _pairs(
            session, select(ConsentEvent.id, ConsentEvent.topics), ConsentEvent.id, event_ids
        )
        form_ids = {m.form_id for m in found if m.form_id is not None}
        batch.gmail_tip = _pairs(
            session, select(Form.id, Form.welcome_gmail_tip), Form.id, form_ids
        )
        slugs = {s for topics in batch.event_topics.values() for s in topics or ()}
        batch.topic_names = list(
            _pairs(
                session, select(Topic.slug, Topic.name).order_by(Topic.id), Topic.slug, slugs
            ).items()
        )
        batch.blocked = suppressions.blocked(session, [p.email for p in batch.people.values()])
        return batch


def _pairs(session: Session, query: Select, key: Any, values: set) -> dict:
    """{first column: second column} of `query` for the rows whose `key` is in `values`."""
    if not values:
        return {}
    return {a: b for a, b in session.execute(query.where(key.in_(values)))}


def _claim(session: Session, message_id: int) -> bool:
    """Take the message for this worker, committed before any SMTP: two workers (or a
    re-enqueued job) never both send it. The commit also makes the outcome of the batch's
    previous message durable (see `_finish`)."""
    result = session.execute(
        update(_OUTBOUND)
        .where(_OUTBOUND.c.id == message_id, _OUTBOUND.c.status == MessageStatus.PENDING)
        .values(
            status=MessageStatus.SENDING, attempts=_OUTBOUND.c.attempts + 1, claimed_at=utcnow()
        )
    )
    session.commit()
    return result.rowcount == 1


def send(
    session: Session,
    message_id: int,
    sender: Sender,
    links: Links,
    final_attempt: bool = False,
    batch: Batch | None = None,
) -> MessageStatus | None:
    """Send one pending system email.

    Safe to rerun and to run twice at once: only the run that claims the message sends it.
    A permanent refusal fails the message and suppresses the address; any other failure puts
    it back to pending and re-raises so that RQ retries with back-off, until `final_attempt`,
    which marks it failed. Commits; with a `batch`, a sent or skipped message's outcome is
    committed with the claim of the batch's next message (one commit an email), and the
    caller commits after the last one (`finish_batch`).
    """
    deferred = batch is not None
    if batch is None:
        if not _claim(session, message_id):
            return None
        batch = Batch.load(session, [message_id], MessageStatus.SENDING)
    elif message_id not in batch.messages or not _claim(session, message_id):
        session.commit()  # the previous message's outcome
        return None
    message = batch.messages.get(message_id)
    if message is None:  # deleted between the claim and the read
        return None
    try:
        status, sent = _deliver(session, batch, message, sender, links)
    except SendError as exc:
        if exc.permanent:
            person = batch.people.get(message.subscriber_id)
            if person is not None:
                suppressions.add(session, person.email, SuppressionReason.HARD_BOUNCE, str(exc))
                batch.blocked.add(person.email)
            return _finish(session, message_id, MessageStatus.FAILED, str(exc))
        _release(session, message_id, str(exc), final_attempt)
        log.warning("temporary failure sending message %s: %s", message_id, exc)
        raise
    except Exception as exc:
        session.rollback()
        _release(session, message_id, f"{type(exc).__name__}: {exc}", final_attempt)
        raise
    return _finish(session, message_id, status, sent, commit=not deferred)


def finish_batch(session: Session) -> None:
    """Commit the outcome of a batch's last message (see `send`)."""
    session.commit()


def _deliver(
    session: Session, batch: Batch, message: _Message, sender: Sender, links: Links
) -> tuple[MessageStatus, str | None]:
    """Render and send; the status to record and, unless sent, why not."""
    person = batch.people.get(message.subscriber_id)
    if person is None:
        return MessageStatus.SKIPPED, "subscriber is gone"
    if person.email in batch.blocked:
        return MessageStatus.SKIPPED, "address is suppressed"

    topic_slugs = list(batch.event_topics.get(message.consent_event_id) or ())
    if message.kind is MessageKind.CONFIRMATION:
        # Only what is still pending: "withdraw this request" must not touch active topics.
        topic_slugs = sorted(person.pending & set(topic_slugs))
        if not topic_slugs:
            return MessageStatus.SKIPPED, "nothing left to confirm"
    if message.kind is MessageKind.WELCOME and not person.active:
        return MessageStatus.SKIPPED, "unsubscribed before the welcome"

    chosen = set(topic_slugs)
    context: dict[str, Any] = {
        "name": person.name,
        "topics": [name for slug, name in batch.topic_names if slug in chosen],
        "preferences_url": links.preferences(message.subscriber_id),
        "unsubscribe_url": links.unsubscribe(message.subscriber_id, topic_slugs, message.id),
        "gmail_tip": batch.gmail_tip.get(message.form_id, False),
    }
    if message.kind is MessageKind.CONFIRMATION:
        context["confirm_url"] = links.confirm(message.id)

    rendered = rendering.render(session, TEMPLATES[message.kind], person.locale, context)
    envelope = Envelope(
        sender=sender.mail_from,
        to_email=person.email,
        to_name=person.name,
        subject=rendered.subject,
        message_id=message.message_id,
        unsubscribe_url=context["unsubscribe_url"],
        extra_headers={"X-Mailer-Message": str(message.id)},
    )
    sender.send(envelope, rendered.text, rendered.html)
    return MessageStatus.SENT, None


def _finish(
    session: Session,
    message_id: int,
    status: MessageStatus,
    error: str | None,
    *,
    commit: bool = True,
) -> MessageStatus:
    session.execute(
        update(_OUTBOUND)
        .where(_OUTBOUND.c.id == message_id)
        .values(
            status=status,
            error=error[:2000] if error else None,
            sent_at=utcnow() if status is MessageStatus.SENT else _OUTBOUND.c.sent_at,
        )
    )
    if commit:
        session.commit()
    return status


def _release(session: Session, message_id: int, error: str, final: bool) -> None:
    """Back to pending for the next retry, or failed when no retry is left. Commits at once:
    the retry's job may start before this worker's next claim."""
    attempts = session.scalar(
        select(OutboundMessage.attempts).where(OutboundMessage.id == message_id)
    )
    give_up = final or (attempts or 0) >= MAX_ATTEMPTS
    _finish(session, message_id, MessageStatus.FAILED if give_up else MessageStatus.PENDING, error)


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
