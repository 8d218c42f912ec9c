"""What the ledger says happened is what the person saw and did."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.delivery.models import OutboundMessage
from mailer.extensions import jobs
from mailer.subscribers.forms import set_consent_text
from mailer.subscribers.models import Subscriber, SubscriberStatus, SubscriptionStatus
from tests import signups
from tests.conftest import form_tokens
from tests.factories import make_form
from tests.inbox import link

ORIGIN = {"Origin": "https://shop.example"}


def _events(session, type_):
    session.expire_all()
    return session.scalars(
        select(ConsentEvent).where(ConsentEvent.type == type_).order_by(ConsentEvent.seq)
    ).all()


def _confirm(client, mail):
    path = link(mail, "confirm").removeprefix("http://localhost")
    page = client.get(path).get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    return client.post(path, data={"csrf_token": token})


def test_the_text_recorded_is_the_text_the_page_showed(client, session):
    form = make_form(session)
    v1 = form.current_version
    page = client.get("/subscribe/news").get_data(as_text=True)
    v2 = set_consent_text(session, form, "A newer text nobody on the old page saw.")
    session.commit()
    response = client.post(
        "/subscribe/news", data={**form_tokens(page), "email": "ann@example.com", "consent": "true"}
    )
    assert response.status_code == 200
    signups.drain(client.application)
    (event,) = _events(session, ConsentEventType.REQUESTED)
    assert event.form_version_id == v1.id != v2.id
    assert event.consent_text_sha256 == v1.consent_text_sha256
    assert event.evidence["channel"] == "hosted"


def test_the_embed_snippet_carries_its_text_version(client, session):
    form = make_form(session)
    snippet = client.get("/subscribe/news/embed").get_data(as_text=True)
    assert f'name="form_version" value="{form.current_version.id}"' in snippet
    set_consent_text(session, form, "Changed after the snippet was copied.")
    session.commit()
    client.post(
        "/subscribe/news",
        headers=ORIGIN,
        data={
            "email": "ann@example.com",
            "consent": "true",
            "form_version": str(form.versions[0].id),
        },
    )
    signups.drain(client.application)
    (event,) = _events(session, ConsentEventType.REQUESTED)
    assert event.form_version_id == form.versions[0].id
    assert event.evidence["channel"] == "embed"
    assert event.evidence["origin"] == "https://shop.example"


def test_a_version_of_another_form_is_refused(client, session):
    make_form(session)
    other = make_form(session, slug="other", topics=("other",))
    response = client.post(
        "/subscribe/news",
        headers=ORIGIN,
        json={
            "email": "ann@example.com",
            "consent": True,
            "form_version": other.current_version.id,
        },
    )
    assert response.status_code == 400 and "form_version" in response.get_json()["errors"]


def test_withdrawing_a_request_leaves_earlier_consent_alone(client, session, work, inbox):
    make_form(session, topics=("alpha", "beta"))
    client.post(
        "/subscribe/news",
        headers=ORIGIN,
        json={"email": "ann@example.com", "consent": True, "topics": ["alpha"]},
    )
    signups.drain(client.application)
    work()
    _confirm(client, inbox.only())
    inbox.clear()
    session.execute(Subscriber.__table__.update().values(confirmation_sent_at=None))
    session.commit()
    client.post(
        "/subscribe/news",
        headers=ORIGIN,
        json={"email": "ann@example.com", "consent": True, "topics": ["alpha", "beta"]},
    )
    signups.drain(client.application)
    work()
    withdraw = link(inbox.only(), "unsubscribe").removeprefix("http://localhost")
    client.post(withdraw, data={"List-Unsubscribe": "One-Click"})
    session.expire_all()
    ann = session.scalar(select(Subscriber))
    assert {s.topic.slug: s.status for s in ann.subscriptions} == {
        "alpha": SubscriptionStatus.ACTIVE,
        "beta": SubscriptionStatus.UNSUBSCRIBED,
    }
    assert _events(session, ConsentEventType.WITHDRAWN)[-1].topics == ["beta"]


def test_confirming_a_withdrawn_request_says_so(client, session, work, inbox):
    make_form(session)
    client.post(
        "/subscribe/news", headers=ORIGIN, json={"email": "ann@example.com", "consent": True}
    )
    signups.drain(client.application)
    work()
    mail = inbox.only()
    client.post(
        link(mail, "unsubscribe").removeprefix("http://localhost"),
        data={"List-Unsubscribe": "One-Click"},
    )
    page = _confirm(client, mail).get_data(as_text=True)
    assert "Nothing to confirm" in page and "You are subscribed" not in page
    session.expire_all()
    assert session.scalar(select(Subscriber)).status is SubscriberStatus.UNSUBSCRIBED
    assert _events(session, ConsentEventType.CONFIRMED) == []


def test_a_second_request_inside_the_window_is_confirmed_later(app, client, session, work, inbox):
    make_form(session)
    make_form(session, slug="other", topics=("other",))
    client.post(
        "/subscribe/news", headers=ORIGIN, json={"email": "ann@example.com", "consent": True}
    )
    client.post(
        "/subscribe/other", headers=ORIGIN, json={"email": "ann@example.com", "consent": True}
    )
    signups.drain(app)
    work()
    assert len(inbox.messages()) == 1, "one email per address per window"
    session.expire_all()
    deferred = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()[-1]
    first = session.scalar(select(OutboundMessage).order_by(OutboundMessage.id))
    assert deferred.send_after is not None
    assert deferred.send_after - first.created_at >= timedelta(seconds=590)
    with app.app_context():
        assert jobs.queue.scheduled_job_registry.count == 1  # RQ's scheduler sends it then
    # A third request inside the window adds nothing more.
    client.post(
        "/subscribe/other", headers=ORIGIN, json={"email": "ann@example.com", "consent": True}
    )
    assert signups.drain(app) == 1
    session.expire_all()
    assert len(session.scalars(select(OutboundMessage)).all()) == 2
