"""Rows and helpers for the tracking tests: a sent campaign delivery, its tracking links, and
the bounce samples with our real Message-ID filled in."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from mailer.campaigns import identity
from mailer.campaigns.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Template,
)
from mailer.config import Settings
from mailer.database import utcnow
from mailer.subscribers.models import Subscriber, SubscriberStatus, Topic
from mailer.tracking.links import TrackingLinks

SAMPLES = Path(__file__).parent / "samples"
DOMAIN = "news.example.org"


@dataclass
class Sent:
    delivery: Delivery
    campaign: Campaign
    subscriber: Subscriber


class Factory:
    """Campaign, template, topic, subscriber and delivery rows, made directly with the models."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._topic: Topic | None = None
        self._template: Template | None = None

    def topic(self) -> Topic:
        if self._topic is None:
            self._topic = Topic(slug="news", name="News", description="")
            self.session.add(self._topic)
        return self._topic

    def template(self) -> Template:
        if self._template is None:
            self._template = Template(name="Plain", mjml="<mjml><mj-body></mj-body></mjml>")
            self.session.add(self._template)
        return self._template

    def campaign(self, track_opens: bool = True, track_clicks: bool = True) -> Campaign:
        campaign = Campaign(
            name="May news",
            subject="News for May",
            from_name="The Paper",
            from_email="news@news.example.org",
            template=self.template(),
            topic=self.topic(),
            track_opens=track_opens,
            track_clicks=track_clicks,
            status=CampaignStatus.SENT,
        )
        self.session.add(campaign)
        return campaign

    def subscriber(self, email: str = "ann@example.com", tracking: bool = True) -> Subscriber:
        subscriber = Subscriber(
            email=email, status=SubscriberStatus.ACTIVE, tracking_enabled=tracking
        )
        self.session.add(subscriber)
        return subscriber

    def sent(
        self,
        email: str = "ann@example.com",
        sent_ago: timedelta = timedelta(hours=1),
        campaign: Campaign | None = None,
        subscriber: Subscriber | None = None,
        tracking: bool = True,
        track_opens: bool = True,
        track_clicks: bool = True,
    ) -> Sent:
        """A delivery sent `sent_ago`; committed, so the app's own sessions see it."""
        campaign = campaign or self.campaign(track_opens, track_clicks)
        subscriber = subscriber or self.subscriber(email, tracking)
        self.session.flush()
        delivery = Delivery(
            campaign_id=campaign.id,
            subscriber_id=subscriber.id,
            status=DeliveryStatus.SENT,
            sent_at=utcnow() - sent_ago,
        )
        self.session.add(delivery)
        self.session.commit()
        return Sent(delivery, campaign, subscriber)


@pytest.fixture
def factory(session: Session) -> Factory:
    return Factory(session)


@pytest.fixture
def links(app: Flask, settings: Settings) -> TrackingLinks:
    return TrackingLinks(app.extensions["mailer.tokens"], settings.base_url)


def path_of(url: str) -> str:
    """The path the test client requests for a link in an email."""
    return url.removeprefix("http://localhost")


def message_id(settings: Settings, delivery: Delivery) -> str:
    return (
        "<"
        + identity.message_id(settings.secret_key, delivery.campaign_id, delivery.id, DOMAIN)
        + ">"
    )


def sample(name: str, message_id: str = "", recipient: str = "ann@example.com") -> bytes:
    """A bounce or complaint sample with our Message-ID and the recipient filled in."""
    text = (SAMPLES / name).read_text(encoding="utf-8")
    text = text.replace("@@MESSAGE_ID@@", message_id).replace("@@RECIPIENT@@", recipient)
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def process_env(settings: Settings) -> dict[str, str]:
    """The environment a separate mailer process needs to share this test's Redis and DB."""
    return {
        **os.environ,
        "MAILER_ENV": "test",
        "MAILER_INSTANCE_PATH": str(settings.instance_path),
        "MAILER_DATABASE_URL": settings.database_url,
        "MAILER_REDIS_URL": settings.redis_url,
        "MAILER_SECRET_KEY": settings.secret_key,
        "MAILER_SMTP_URL": settings.smtp_url,
        "MAILER_BASE_URL": settings.base_url,
    }
