"""Rows the segment tests share: keys per role, topics, forms, campaigns and subscribers with
whatever profile, engagement and deliveries a test needs (inserted directly: the point is to
reach states the sign-up journey alone would take months to produce)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.campaigns.models import Campaign, Delivery, Template
from mailer.subscribers.models import Form, Subscriber, Subscription, Topic

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def make_key(session: Session) -> Callable[[Role], dict[str, str]]:
    def build(role: Role) -> dict[str, str]:
        _, secret = create_api_key(session, role, f"{role.value} key")
        return {"Authorization": f"Bearer {secret}"}

    return build


class World:
    """Topics `news`/`deals`/`events`, forms `home`/`shop`, campaigns 1..4 (ids in `campaigns`)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.topics = [Topic(slug=s, name=s.title()) for s in ("news", "deals", "events")]
        self.forms = [Form(slug=s, name=s.title(), allowed_origins=[]) for s in ("home", "shop")]
        session.add_all([*self.topics, *self.forms])
        session.flush()
        template = Template(name="Plain", mjml="<mjml><mj-body></mj-body></mjml>")
        session.add(template)
        session.flush()
        self.campaigns = [
            Campaign(
                name=f"Issue {i}",
                subject=f"Issue {i}",
                from_name="News",
                from_email="news@example.org",
                template_id=template.id,
                topic_id=self.topics[0].id,
            )
            for i in range(1, 5)
        ]
        session.add_all(self.campaigns)
        session.commit()

    def subscriber(
        self,
        email: str,
        *,
        subscriptions: dict[str, str] | None = None,
        deliveries: list[dict[str, Any]] | None = None,
        **profile: Any,
    ) -> Subscriber:
        """`subscriptions`: topic slug -> status; `deliveries`: Delivery columns (campaign_id
        given as an index into `campaigns`)."""
        profile.setdefault("created_at", NOW)
        subscriber = Subscriber(email=email, **profile)
        self.session.add(subscriber)
        self.session.flush()
        by_slug = {t.slug: t for t in self.topics}
        for slug, status in (subscriptions or {}).items():
            self.session.add(
                Subscription(subscriber_id=subscriber.id, topic_id=by_slug[slug].id, status=status)
            )
        for row in deliveries or []:
            row = dict(row)
            row["campaign_id"] = self.campaigns[row.pop("campaign")].id
            self.session.add(Delivery(subscriber_id=subscriber.id, **row))
        self.session.commit()
        return subscriber


@pytest.fixture
def world(session: Session) -> World:
    return World(session)
