"""A realistic history of one person, for the erasure, export and retention tests: signed up
and confirmed on a form (from a known IP and browser), mailed two campaigns (one delivered,
opened and clicked; one refused with an SMTP error quoting the address), a soft bounce whose
diagnostic names the mailbox, and a staff member who looked them up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer import tasks
from mailer.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, Template
from mailer.database import utcnow
from mailer.subscribers.models import Subscriber, Topic
from mailer.tracking.bounces import record_bounce
from mailer.tracking.links import TrackingLinks
from mailer.tracking.models import BounceKind, BounceSource
from tests import signups
from tests.factories import make_form
from tests.inbox import link

EMAIL = "erin.eraseme@example.com"
LOCAL = "erin.eraseme"
NAME = "Erin Eraseme"
IP = "198.51.100.77"
AGENT = "ErinBrowser/7.1 (Eraseme Desktop)"
ORIGIN = {"Origin": "https://shop.example"}
PERSON = {"User-Agent": AGENT}
PERSON_ENV = {"REMOTE_ADDR": IP}


@dataclass
class History:
    subscriber_id: int
    delivered_id: int
    refused_id: int
    campaign_ids: list[int]


def sign_up(client: FlaskClient, work, email: str = EMAIL, name: str = NAME) -> None:
    client.post(
        "/subscribe/news",
        json={"email": email, "consent": True, "name": name},
        headers={**ORIGIN, **PERSON},
        environ_base=PERSON_ENV,
    )
    signups.drain(client.application)
    work()


def confirm(client: FlaskClient, work, inbox, email: str = EMAIL) -> None:
    path = link(inbox.messages(email)[-1], "confirm").removeprefix("http://localhost")
    page = client.get(path, environ_base=PERSON_ENV).get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post(path, data={"csrf_token": token}, headers=PERSON, environ_base=PERSON_ENV)
    work()


def _campaign(session: Session, topic: Topic, template: Template, name: str) -> Campaign:
    campaign = Campaign(
        name=name,
        subject=f"{name} from The Paper",
        from_name="The Paper",
        from_email="news@news.example.org",
        template=template,
        topic=topic,
        status=CampaignStatus.SENT,
        frozen_subject=f"{name} from The Paper",
        frozen_html="<p>Hello {{ name }}</p>",
    )
    session.add(campaign)
    return campaign


def build(
    app: Flask, client: FlaskClient, session: Session, work, inbox, staff_headers: dict
) -> History:
    """The whole history through the real pages, endpoints, flush job and bounce recorder."""
    make_form(session, welcome=True)
    sign_up(client, work)
    confirm(client, work, inbox)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == EMAIL))
    topic = session.scalar(select(Topic).where(Topic.slug == "news"))
    template = Template(name="Plain", mjml="<mjml><mj-body></mj-body></mjml>")
    may, june = (
        _campaign(session, topic, template, "May"),
        _campaign(session, topic, template, "June"),
    )
    session.flush()
    delivered = Delivery(
        campaign_id=may.id,
        subscriber_id=subscriber.id,
        status=DeliveryStatus.SENT,
        sent_at=utcnow() - timedelta(hours=2),  # a later open is a person, not a prefetch
    )
    refused = Delivery(
        campaign_id=june.id,
        subscriber_id=subscriber.id,
        status=DeliveryStatus.FAILED,
        error=f"550 5.2.2 <{EMAIL}>: mailbox of {NAME} is over quota",
    )
    session.add_all([delivered, refused])
    session.commit()

    links = TrackingLinks(app.extensions["mailer.tokens"], app.config["MAILER"].base_url)
    for url in (
        links.open_pixel(delivered.id),
        links.click(delivered.id, "https://shop.example/sale", 0),
    ):
        response = client.get(
            url.removeprefix("http://localhost"), headers=PERSON, environ_base=PERSON_ENV
        )
        assert response.status_code in (200, 302)
    with app.app_context():
        tasks.enqueue(tasks.FLUSH_TRACKING)
    work()
    record_bounce(
        session,
        delivery_id=delivered.id,
        email=None,
        kind=BounceKind.SOFT,
        source=BounceSource.DSN,
        status="4.2.2",
        detail=f"452 4.2.2 mailbox {LOCAL} full ({NAME})",
    )
    session.commit()
    looked = client.get(f"/api/v1/subjects/{EMAIL}/export", headers=staff_headers)
    assert looked.status_code == 200
    return History(subscriber.id, delivered.id, refused.id, [may.id, june.id])
