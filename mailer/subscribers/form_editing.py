"""Creating and changing topics and sign-up forms from the admin pages, with the figures the
lists show beside them (subscriptions per topic, each form's confirmation rate).

Values arrive checked field by field (the admin views load them with the API's own schemas,
so both doors accept the same things); what only the database knows (a slug taken, a topic
that does not exist) is raised here as `Problems`, by field. A changed consent text becomes
a new version through `forms.set_consent_text`, as over the API; the old versions stay,
frozen, because consent events point at them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.subscribers import forms
from mailer.subscribers.models import Form, Subscription, SubscriptionStatus, Topic

FORM_FIELDS = (
    "slug",
    "name",
    "locale",
    "ask_name",
    "welcome_enabled",
    "welcome_gmail_tip",
    "allowed_origins",
)


class Problems(ValueError):
    """What cannot be saved, by field: `{"slug": ["a form with this slug exists"]}`."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def normalise_text(text: str) -> str:
    """Consent text as stored: browsers send a textarea's line breaks as CRLF; an unchanged
    text must compare equal, so that saving a form without touching it adds no version."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def create_topic(session: Session, slug: str, name: str, description: str = "") -> Topic:
    """A new topic. Raises `Problems` when the slug is taken. Commits."""
    if session.scalar(select(Topic.id).where(Topic.slug == slug)) is not None:
        raise Problems({"slug": ["a topic with this slug exists"]})
    topic = Topic(slug=slug, name=name, description=description)
    session.add(topic)
    session.commit()
    return topic


def update_topic(session: Session, topic: Topic, name: str, description: str) -> Topic:
    """Name and description; the slug stays (segments, imports and List-Id name topics by
    it). Commits; rerunning is harmless."""
    topic.name = name
    topic.description = description
    session.commit()
    return topic


def _topics(session: Session, slugs: list[str]) -> list[Topic]:
    found = {t.slug: t for t in session.scalars(select(Topic).where(Topic.slug.in_(slugs)))}
    errors = {
        f"topics.{i}": [f"unknown topic {slug!r}"]
        for i, slug in enumerate(slugs)
        if slug not in found
    }
    if errors:
        raise Problems(errors)
    return [found[s] for s in dict.fromkeys(slugs)]


def save_form(session: Session, form: Form | None, values: Mapping[str, Any]) -> Form:
    """Create a form (`form` None) or change one, from checked `values` (slug, name, topics as
    slugs, locale, ask_name, welcome_enabled, welcome_gmail_tip, allowed_origins,
    consent_text). A consent text that differs from the current one becomes a new version.
    Raises `Problems` (nothing written). Commits; saving the same values again changes
    nothing and adds no version."""
    slug = values["slug"]
    other = session.scalar(select(Form.id).where(Form.slug == slug))
    if other is not None and (form is None or other != form.id):
        session.rollback()
        raise Problems({"slug": ["a form with this slug exists"]})
    try:
        topics = _topics(session, list(values["topics"]))
    except Problems:
        session.rollback()
        raise
    if form is None:
        form = Form()
        session.add(form)
    for key in FORM_FIELDS:
        setattr(form, key, values[key])
    form.topics = topics
    session.flush()
    forms.set_consent_text(session, form, normalise_text(values["consent_text"]))
    session.commit()
    return form


@dataclass(frozen=True)
class Rate:
    requested: int  # people who asked through this form
    confirmed: int  # of those, people who confirmed

    @property
    def percent(self) -> float | None:
        return 100 * self.confirmed / self.requested if self.requested else None


def confirmation_rates(session: Session, form_ids: Iterable[int]) -> dict[int, Rate]:
    """Per form: distinct people with a sign-up request through it on the ledger, and
    distinct people who confirmed one (confirmations point at the form they confirm).
    Grouped in SQL over the given forms only. Read-only."""
    ids = list(form_ids)
    rows = session.execute(
        select(
            ConsentEvent.form_id,
            ConsentEvent.type,
            func.count(func.distinct(ConsentEvent.subscriber_id)),
        )
        .where(
            ConsentEvent.form_id.in_(ids),
            ConsentEvent.type.in_([ConsentEventType.REQUESTED, ConsentEventType.CONFIRMED]),
        )
        .group_by(ConsentEvent.form_id, ConsentEvent.type)
    ).all()
    counts: dict[int, dict[ConsentEventType, int]] = {i: {} for i in ids}
    for form_id, type_, n in rows:
        counts[form_id][type_] = n
    return {
        i: Rate(c.get(ConsentEventType.REQUESTED, 0), c.get(ConsentEventType.CONFIRMED, 0))
        for i, c in counts.items()
    }


def subscription_counts(session: Session, topic_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Per topic, subscriptions by status (`{"active": 12, "pending": 3}`). Read-only."""
    ids = list(topic_ids)
    rows = session.execute(
        select(Subscription.topic_id, Subscription.status, func.count())
        .where(Subscription.topic_id.in_(ids))
        .group_by(Subscription.topic_id, Subscription.status)
    ).all()
    counts: dict[int, dict[str, int]] = {i: {s.value: 0 for s in SubscriptionStatus} for i in ids}
    for topic_id, status, n in rows:
        counts[topic_id][status.value] = n
    return counts
