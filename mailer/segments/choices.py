"""What exists to pick from in the segment builder: topics, forms, campaigns, and the attribute
keys and languages subscribers actually have.

Attribute keys and languages come from a sample of the newest profiles (`SAMPLE` rows, one
indexed query): a distinct list over every profile would scan the whole table on each page
view, and keys that only a handful of old profiles carry can still be typed by hand ("Other
attribute..."). Each key's type is the JSON type most of its sampled values have.

Reads only; nothing here commits.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.segments.grammar import ATTRIBUTE_KEY
from mailer.subscribers.models import Form, Subscriber, Topic

SAMPLE = 1000
MAX_CAMPAIGNS = 200
MAX_KEYS = 200
# What the rules count as a date (see mailer.segments.rules): YYYY-MM-DD, alone or before T/space.
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ]|\Z)")


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class AttributeKey:
    key: str
    type: str  # string, number, date or boolean: what most sampled values are
    seen: int  # in how many sampled profiles


@dataclass(frozen=True)
class Choices:
    topics: tuple[Option, ...] = ()  # by slug
    forms: tuple[Option, ...] = ()  # by slug
    campaigns: tuple[Option, ...] = ()  # by id, newest first
    attributes: tuple[AttributeKey, ...] = ()  # most common first
    locales: tuple[str, ...] = ()
    topic_slugs: dict[int, str] = field(default_factory=dict)  # id -> slug
    form_slugs: dict[int, str] = field(default_factory=dict)

    def attribute_type(self, key: str) -> str | None:
        for attribute in self.attributes:
            if attribute.key == key:
                return attribute.type
        return None

    def has_attribute(self, key: str) -> bool:
        return self.attribute_type(key) is not None

    def label(self, options: tuple[Option, ...], value: str) -> str:
        for option in options:
            if option.value == value:
                return option.label
        return value


def json_type(value: object) -> str | None:
    """The attribute type a stored JSON value compares as (None: null, lists, objects)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "date" if DATE.match(value) else "string"
    return None


def attribute_keys(documents: list[dict], limit: int = MAX_KEYS) -> tuple[AttributeKey, ...]:
    """Keys the rules can name, with their usual type, from a sample of `attributes`."""
    types: dict[str, Counter[str]] = defaultdict(Counter)
    for document in documents:
        if not isinstance(document, dict):
            continue
        for key, value in document.items():
            kind = json_type(value)
            if kind is not None and isinstance(key, str) and ATTRIBUTE_KEY.match(key):
                types[key][kind] += 1
    keys = [
        AttributeKey(key, counts.most_common(1)[0][0], sum(counts.values()))
        for key, counts in types.items()
    ]
    keys.sort(key=lambda k: (-k.seen, k.key))
    return tuple(keys[:limit])


def load(session: Session, sample: int = SAMPLE) -> Choices:
    """Everything the builder offers, in five small queries."""
    topics = session.execute(select(Topic.id, Topic.slug, Topic.name).order_by(Topic.name)).all()
    forms = session.execute(select(Form.id, Form.slug, Form.name).order_by(Form.name)).all()
    campaigns = session.execute(
        select(Campaign.id, Campaign.name, Campaign.status, Campaign.started_at)
        .order_by(Campaign.id.desc())
        .limit(MAX_CAMPAIGNS)
    ).all()
    profiles = session.execute(
        select(Subscriber.attributes, Subscriber.locale)
        .order_by(Subscriber.id.desc())
        .limit(sample)
    ).all()
    locales = Counter(locale for _, locale in profiles if locale)
    return Choices(
        topics=tuple(Option(slug, f"{name} ({slug})") for _, slug, name in topics),
        forms=tuple(Option(slug, f"{name} ({slug})") for _, slug, name in forms),
        campaigns=tuple(_campaign_option(*row) for row in campaigns),
        attributes=attribute_keys([attributes for attributes, _ in profiles]),
        locales=tuple(sorted(locales, key=lambda loc: (-locales[loc], loc))),
        topic_slugs={topic_id: slug for topic_id, slug, _ in topics},
        form_slugs={form_id: slug for form_id, slug, _ in forms},
    )


def _campaign_option(campaign_id: int, name: str, status: CampaignStatus, started) -> Option:
    when = f", {started:%Y-%m-%d}" if started else ""
    return Option(str(campaign_id), f"{name} (#{campaign_id}, {status.value}{when})")
