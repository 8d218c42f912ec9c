"""Reading subscribers (the list, one profile with its consent history) and the few profile
fields staff may change. Status and address never change here: status follows consent
(sign-up, confirmation, unsubscribe, import with evidence), and an address is the person."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from mailer.consent.models import ConsentEvent
from mailer.subscribers.models import (
    Form,
    FormVersion,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)

MAX_KEYS = 100
MAX_KEY_LENGTH = 64
MAX_TEXT = 1000
MAX_LIST = 100


class InvalidAttributes(ValueError):
    """Names each bad key as `attributes.<key>` (and `attributes.<key>.<index>` in lists)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def _key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not key.strip():
        return "an attribute name must be non-empty text"
    if len(key) > MAX_KEY_LENGTH:
        return f"attribute names are at most {MAX_KEY_LENGTH} characters"
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in key):
        return "attribute names cannot contain control characters"
    return None


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite"
    if isinstance(value, str):
        if "\x00" in value:  # PostgreSQL's JSON operators fail on it, for every row
            return "text cannot contain NUL characters"
        return None if len(value) <= MAX_TEXT else f"text is at most {MAX_TEXT} characters"
    return "use text, a number, true/false, or a list of those (dates as ISO 8601 text)"


def check_attribute(key: Any, value: Any) -> dict[str, list[str]]:
    """Problems with one attribute, by field name; empty when it may be stored."""
    field = f"attributes.{key}"
    problem = _key_problem(key)
    if problem:
        return {field: [problem]}
    if value is None:
        return {}
    if isinstance(value, list):
        if len(value) > MAX_LIST:
            return {field: [f"lists hold at most {MAX_LIST} values"]}
        errors = {}
        for index, item in enumerate(value):
            problem = _scalar_problem(item)
            if problem:
                errors[f"{field}.{index}"] = [problem]
        return errors
    problem = _scalar_problem(value)
    return {field: [problem]} if problem else {}


def merge_attributes(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with `patch` merged in: a key set to None is deleted. Raises
    `InvalidAttributes` naming every bad key, or when the result has too many keys."""
    errors: dict[str, list[str]] = {}
    for key, value in patch.items():
        errors.update(check_attribute(key, value))
    if errors:
        raise InvalidAttributes(errors)
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > MAX_KEYS:
        raise InvalidAttributes({"attributes": [f"a subscriber has at most {MAX_KEYS} attributes"]})
    return merged


@dataclass(frozen=True)
class ProfileChange:
    """What PATCH may change; None leaves a field as it is."""

    name: str | None = None
    locale: str | None = None
    tracking_enabled: bool | None = None
    attributes: Mapping[str, Any] | None = None


def update_profile(session: Session, subscriber: Subscriber, change: ProfileChange) -> Subscriber:
    """Apply `change`. Raises `InvalidAttributes` (nothing written then). Commits; rerunning
    the same change is harmless."""
    if change.attributes is not None:
        subscriber.attributes = merge_attributes(subscriber.attributes or {}, change.attributes)
    if change.name is not None:
        subscriber.name = change.name
    if change.locale is not None:
        subscriber.locale = change.locale
    if change.tracking_enabled is not None:
        subscriber.tracking_enabled = change.tracking_enabled
    session.commit()
    return subscriber


def find(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.scalars(
        select(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .options(selectinload(Subscriber.subscriptions).selectinload(Subscription.topic))
    ).first()


def list_page(
    session: Session,
    page_number: int,
    per_page: int,
    email: str | None = None,
    status: SubscriberStatus | None = None,
    topic_id: int | None = None,
) -> tuple[list[Subscriber], int]:
    """One page of subscribers by id (a stable order), and how many match.

    `email` is an exact, normalised address. With `topic_id`, only people with a subscription
    to that topic match, and `status` then means the status of that subscription (active on
    "news"); without it, `status` is the subscriber's overall status. Read-only.
    """
    query = select(Subscriber)
    if email is not None:
        query = query.where(Subscriber.email == email)
    if topic_id is not None:
        sub = select(Subscription.subscriber_id).where(Subscription.topic_id == topic_id)
        if status is not None:
            sub = sub.where(Subscription.status == SubscriptionStatus(status.value))
        query = query.where(Subscriber.id.in_(sub))
    elif status is not None:
        query = query.where(Subscriber.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(selectinload(Subscriber.subscriptions).selectinload(Subscription.topic))
        .order_by(Subscriber.id)
        .offset((page_number - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(rows), total


def topics_of(subscriber: Subscriber) -> list[dict[str, Any]]:
    return [
        {
            "slug": s.topic.slug,
            "name": s.topic.name,
            "status": s.status.value,
            "created_at": s.created_at,
            "confirmed_at": s.confirmed_at,
        }
        for s in subscriber.subscriptions
    ]


def consent_history(session: Session, subscriber_id: int) -> list[dict[str, Any]]:
    """The subscriber's consent events in chain order. Read-only."""
    events = session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber_id)
        .order_by(ConsentEvent.seq)
    ).all()
    return describe_events(session, list(events))


def describe_events(
    session: Session, events: list[ConsentEvent], clear_values: bool = False
) -> list[dict[str, Any]]:
    """Events with the form and the version of the consent text each points at.
    `clear_values` adds the address, IP and user agent as recorded (empty once erased) and
    the row hash: what a data subject's own access request shows. Read-only."""
    form_ids = {e.form_id for e in events if e.form_id}
    version_ids = {e.form_version_id for e in events if e.form_version_id}
    slugs = dict(session.execute(select(Form.id, Form.slug).where(Form.id.in_(form_ids))).all())
    numbers = dict(
        session.execute(
            select(FormVersion.id, FormVersion.version).where(FormVersion.id.in_(version_ids))
        ).all()
    )
    described = []
    for e in events:
        item = {
            "id": e.id,
            "seq": e.seq,
            "type": e.type.value,
            "occurred_at": e.occurred_at,
            "topics": list(e.topics),
            "form_id": e.form_id,
            "form_slug": slugs.get(e.form_id),
            "form_version_id": e.form_version_id,
            "form_version": numbers.get(e.form_version_id),
            "consent_text_sha256": e.consent_text_sha256,
            "source": e.source.value,
            "locale": e.locale,
            "lawful_basis": e.lawful_basis,
            "evidence": e.evidence,
        }
        if clear_values:
            item.update(email=e.email, ip=e.ip, user_agent=e.user_agent, row_hash=e.row_hash)
        described.append(item)
    return described


def consent_texts(session: Session, events: list[ConsentEvent]) -> list[dict[str, Any]]:
    """The exact texts the events point at: form versions, and the texts imports carried in
    their evidence (no form version holds those). Each once, by SHA-256. Read-only."""
    version_ids = {e.form_version_id for e in events if e.form_version_id}
    texts: dict[str, dict[str, Any]] = {}
    for v in session.scalars(
        select(FormVersion).where(FormVersion.id.in_(version_ids)).order_by(FormVersion.id)
    ):
        texts[v.consent_text_sha256] = {
            "sha256": v.consent_text_sha256,
            "text": v.consent_text,
            "form_id": v.form_id,
            "form_version_id": v.id,
            "version": v.version,
        }
    for e in events:
        text = (e.evidence or {}).get("consent_text")
        if isinstance(text, str) and e.consent_text_sha256 and e.consent_text_sha256 not in texts:
            texts[e.consent_text_sha256] = {
                "sha256": e.consent_text_sha256,
                "text": text,
                "form_id": None,
                "form_version_id": None,
                "version": None,
            }
    return list(texts.values())


def profile(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything staff see about one subscriber. Read-only."""
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "locale": subscriber.locale,
        "status": subscriber.status.value,
        "source_form_id": subscriber.source_form_id,
        "created_at": subscriber.created_at,
        "confirmed_at": subscriber.confirmed_at,
        "unsubscribed_at": subscriber.unsubscribed_at,
        "topics": topics_of(subscriber),
        "attributes": subscriber.attributes or {},
        "engagement": {
            "last_open_at": subscriber.last_open_at,
            "last_click_at": subscriber.last_click_at,
            "open_count": subscriber.open_count,
            "machine_open_count": subscriber.machine_open_count,
            "click_count": subscriber.click_count,
            "bounce_count": subscriber.bounce_count,
            "tracking_enabled": subscriber.tracking_enabled,
        },
        "consent_history": consent_history(session, subscriber.id),
    }
