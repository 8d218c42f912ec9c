"""The whole visitor journey: form, the email as received over SMTP, confirm, manage, leave."""

from __future__ import annotations

from sqlalchemy import select

from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.subscribers.models import Subscriber, SubscriberStatus, SubscriptionStatus
from tests import signups
from tests.conftest import form_tokens
from tests.factories import CONSENT, make_form
from tests.inbox import link, links, text_of


def _signup(client, slug="news", email="ann@example.com", **extra):
    page = client.get(f"/subscribe/{slug}")
    assert page.status_code == 200
    data = {**form_tokens(page.get_data(as_text=True)), "email": email, "consent": "on", **extra}
    response = client.post(f"/subscribe/{slug}", data=data)
    signups.drain(client.application)  # accepted into Redis; the workers write it
    return response


def _subscriber(session, email="ann@example.com") -> Subscriber:
    session.expire_all()
    return session.scalar(select(Subscriber).where(Subscriber.email == email))


def _events(session, type_=None):
    session.expire_all()
    rows = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
    return [e for e in rows if type_ is None or e.type is type_]


def test_form_to_confirmed_through_real_smtp(client, session, work, inbox):
    form = make_form(session, welcome=True)
    response = _signup(
        client, email="Ann@Example.COM", name="Ann", headers={"User-Agent": "TestBrowser/1.0"}
    )
    assert response.status_code == 200
    assert "Check your inbox" in response.get_data(as_text=True)

    ann = _subscriber(session)
    assert ann.status is SubscriberStatus.PENDING
    assert [s.status for s in ann.subscriptions] == [SubscriptionStatus.PENDING]
    (requested,) = _events(session, ConsentEventType.REQUESTED)
    assert requested.form_id == form.id
    assert requested.form_version_id == form.current_version.id
    assert requested.consent_text_sha256 == form.current_version.consent_text_sha256
    assert requested.topics == ["news"] and requested.ip == "127.0.0.1"
    assert requested.locale == "en" and requested.source.value == "form"

    assert inbox.messages() == [], "nothing may be sent before the worker runs the job"
    work()
    mail = inbox.only("ann@example.com")
    assert mail["Subject"] == "Please confirm your subscription"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Ann" in text_of(mail)

    confirm_url = link(mail, "confirm")
    path = confirm_url.removeprefix("http://localhost")
    page = client.get(path)
    assert page.status_code == 200 and "Yes, subscribe me" in page.get_data(as_text=True)
    assert _subscriber(session).status is SubscriberStatus.PENDING, "GET must not confirm"

    token = form_tokens(page.get_data(as_text=True) + '<input name="started" value="x">')
    confirmed = client.post(path, data={"csrf_token": token["csrf_token"]})
    assert confirmed.status_code == 200
    assert "You are subscribed" in confirmed.get_data(as_text=True)
    ann = _subscriber(session)
    assert ann.status is SubscriberStatus.ACTIVE and ann.confirmed_at is not None
    assert [s.status for s in ann.subscriptions] == [SubscriptionStatus.ACTIVE]
    (event,) = _events(session, ConsentEventType.CONFIRMED)
    assert event.evidence["request_event_id"] == requested.id
    assert event.evidence["confirmation_message_id"] == mail["Message-ID"].strip("<>")
    assert event.consent_text_sha256 == requested.consent_text_sha256

    # Confirming twice is harmless: same page, no second event.
    again = client.post(path, data={"csrf_token": token["csrf_token"]})
    assert again.status_code == 200 and "You are subscribed" in again.get_data(as_text=True)
    assert len(_events(session, ConsentEventType.CONFIRMED)) == 1

    work()
    welcome = inbox.messages()[-1]
    assert welcome["Subject"] == "Welcome!"
    assert "Promotions" in text_of(welcome)


def test_get_and_head_on_every_link_of_every_email_change_nothing(client, session, work, inbox):
    make_form(session, welcome=True)
    _signup(client)
    work()
    confirmation = inbox.only()
    # Confirm for real (by POST) so that the welcome email exists too.
    path = link(confirmation, "confirm").removeprefix("http://localhost")
    page = client.get(path).get_data(as_text=True)
    client.post(
        path, data={"csrf_token": form_tokens(page + 'name="started" value="x"')["csrf_token"]}
    )
    work()
    # A second request from the form brings the "already subscribed" email.
    _signup(client)
    session.execute(Subscriber.__table__.update().values(confirmation_sent_at=None))
    session.commit()
    _signup(client)
    work()
    mails = inbox.messages()
    subjects = {m["Subject"] for m in mails}
    assert {
        "Please confirm your subscription",
        "Welcome!",
        "You are already subscribed",
    } <= subjects

    before_events = len(_events(session))
    before = [(s.topic_id, s.status) for s in _subscriber(session).subscriptions]
    urls = [u for m in mails for u in links(m)]
    assert any("/unsubscribe/" in u for u in urls) and any("/preferences/" in u for u in urls)
    for url in urls:
        path = url.removeprefix("http://localhost")
        assert client.get(path).status_code in {200, 410}
        assert client.head(path).status_code in {200, 410}
    assert len(_events(session)) == before_events
    assert [(s.topic_id, s.status) for s in _subscriber(session).subscriptions] == before


def test_one_click_unsubscribe_rfc8058(client, session, work, inbox):
    make_form(session)
    _signup(client)
    work()
    mail = inbox.only()
    header_url = str(mail["List-Unsubscribe"]).strip("<>")
    assert header_url.startswith("http://localhost/unsubscribe/")
    path = header_url.removeprefix("http://localhost")
    # The mail client's POST: no cookies, no CSRF token, this exact body.
    fresh = client.application.test_client()
    response = fresh.post(path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert "Location" not in response.headers
    ann = _subscriber(session)
    assert [s.status for s in ann.subscriptions] == [SubscriptionStatus.UNSUBSCRIBED]
    (withdrawn,) = _events(session, ConsentEventType.WITHDRAWN)
    assert withdrawn.topics == ["news"] and withdrawn.evidence["method"] == "one_click"
    # Repeating it is harmless.
    assert fresh.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert len(_events(session, ConsentEventType.WITHDRAWN)) == 1


def test_preferences_change_topics_and_unsubscribe_all(client, session, work, inbox):
    make_form(session, topics=("news", "offers"))
    _signup(client, topics=["news", "offers"])
    work()
    path = link(inbox.only(), "confirm").removeprefix("http://localhost")
    csrf = form_tokens(client.get(path).get_data(as_text=True) + 'name="started" value="x"')
    client.post(path, data={"csrf_token": csrf["csrf_token"]})
    ann = _subscriber(session)
    assert {s.topic.slug: s.status for s in ann.subscriptions} == {
        "news": SubscriptionStatus.ACTIVE,
        "offers": SubscriptionStatus.ACTIVE,
    }

    from mailer.subscribers.links import Links

    with client.application.app_context():
        prefs = Links(client.application.extensions["mailer.tokens"], "").preferences(ann.id)
    page = client.get(prefs)
    assert page.status_code == 200 and "ann@example.com" in page.get_data(as_text=True)
    token = csrf["csrf_token"]
    saved = client.post(prefs, data={"csrf_token": token, "topics": ["news"], "action": "save"})
    assert saved.status_code == 200 and "saved" in saved.get_data(as_text=True)
    ann = _subscriber(session)
    assert {s.topic.slug: s.status for s in ann.subscriptions} == {
        "news": SubscriptionStatus.ACTIVE,
        "offers": SubscriptionStatus.UNSUBSCRIBED,
    }
    assert _events(session, ConsentEventType.WITHDRAWN)[-1].topics == ["offers"]

    client.post(prefs, data={"csrf_token": token, "action": "unsubscribe_all"})
    ann = _subscriber(session)
    assert ann.status is SubscriberStatus.UNSUBSCRIBED
    assert _events(session, ConsentEventType.WITHDRAWN)[-1].topics == ["news"]

    # Ticking a topic again from the preference page is an affirmative act: active at once.
    client.post(prefs, data={"csrf_token": token, "topics": ["offers"], "action": "save"})
    ann = _subscriber(session)
    assert {s.topic.slug: s.status for s in ann.subscriptions}[
        "offers"
    ] is SubscriptionStatus.ACTIVE
    last = _events(session)[-1]
    assert (
        last.type is ConsentEventType.CONFIRMED and last.evidence["method"] == "preference_center"
    )
    # The page's own statement, word for word: it shows no form's consent text.
    assert last.evidence["statement"].startswith("Ticking a topic means you agree")
    assert last.consent_text_sha256 is None


def test_resubmitting_a_confirmed_address_neither_downgrades_nor_reveals(
    client, session, work, inbox
):
    make_form(session)
    _signup(client)
    work()
    path = link(inbox.only(), "confirm").removeprefix("http://localhost")
    csrf = form_tokens(client.get(path).get_data(as_text=True) + 'name="started" value="x"')
    client.post(path, data={"csrf_token": csrf["csrf_token"]})
    inbox.clear()

    new_person = _signup(client, email="bob@example.com")
    known_person = _signup(client, email="ann@example.com")
    assert known_person.status_code == new_person.status_code == 200
    strip = lambda r: r.get_data(as_text=True)  # noqa: E731
    assert strip(known_person) == strip(new_person)
    json_new = client.post(
        "/subscribe/news",
        json={"email": "carl@example.com", "consent": True},
        headers={"Origin": "https://shop.example"},
    )
    json_known = client.post(
        "/subscribe/news",
        json={"email": "ann@example.com", "consent": True},
        headers={"Origin": "https://shop.example"},
    )
    assert json_new.status_code == json_known.status_code == 202
    assert json_new.get_json() == json_known.get_json() == {"status": "pending"}
    signups.drain(client.application)

    ann = _subscriber(session)
    assert ann.status is SubscriberStatus.ACTIVE
    assert [s.status for s in ann.subscriptions] == [SubscriptionStatus.ACTIVE]
    # Ann (one mail per window) gets the "already subscribed" notice, not a confirmation.
    session.execute(Subscriber.__table__.update().values(confirmation_sent_at=None))
    session.commit()
    _signup(client, email="ann@example.com")
    work()
    subjects = [m["Subject"] for m in inbox.messages("ann@example.com")]
    assert subjects and set(subjects) == {"You are already subscribed"}


def test_consent_text_shown_is_the_one_recorded(client, session):
    form = make_form(session)
    page = client.get("/subscribe/news").get_data(as_text=True)
    assert CONSENT in page
    assert 'type="email"' in page and 'autocomplete="email"' in page
    from mailer.subscribers.forms import set_consent_text

    v2 = set_consent_text(session, form, "New wording: monthly newsletter, unsubscribe any time.")
    session.commit()
    page = client.get("/subscribe/news").get_data(as_text=True)
    assert "New wording" in page and CONSENT not in page
    client.post(
        "/subscribe/news", data={**form_tokens(page), "email": "x@example.com", "consent": "true"}
    )
    signups.drain(client.application)
    (event,) = _events(session, ConsentEventType.REQUESTED)
    assert event.form_version_id == v2.id and v2.version == 2
    assert (
        event.consent_text_sha256 == v2.consent_text_sha256 != form.versions[0].consent_text_sha256
    )


def test_a_multi_topic_form_needs_a_topic_ticked(client, session, work, inbox):
    make_form(session, topics=("news", "offers"))
    response = client.post(
        "/subscribe/news",
        json={"email": "ann@example.com", "consent": True},
        headers={"Origin": "https://shop.example"},
    )
    assert response.status_code == 400
    assert response.get_json() == {"errors": {"topics": ["Choose at least one topic."]}}
    assert _subscriber(session) is None and _events(session) == []


def test_no_welcome_for_someone_who_left_before_it_went_out(client, session, work, inbox):
    make_form(session, welcome=True)
    _signup(client)
    work()
    confirmation = inbox.only()
    path = link(confirmation, "confirm").removeprefix("http://localhost")
    csrf = form_tokens(client.get(path).get_data(as_text=True) + 'name="started" value="x"')
    client.post(path, data={"csrf_token": csrf["csrf_token"]})  # queues the welcome
    unsubscribe = link(confirmation, "unsubscribe").removeprefix("http://localhost")
    client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    work()
    assert [m["Subject"] for m in inbox.messages()] == ["Please confirm your subscription"]


def test_a_topic_ticked_twice_counts_once(client, session):
    make_form(session)
    response = client.post(
        "/subscribe/news",
        json={"email": "ann@example.com", "consent": True, "topics": ["news", "news"]},
        headers={"Origin": "https://shop.example"},
    )
    assert response.status_code == 202
    signups.drain(client.application)
    assert [s.topic.slug for s in _subscriber(session).subscriptions] == ["news"]
