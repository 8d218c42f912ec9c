"""Self-service data rights from the preference page: a person downloads everything we hold
about them and erases it, with the preference link as the only proof of who they are.

Only a preference-page token opens these; confirmation and unsubscribe tokens (other salts) do
not. Downloads are POSTs with our CSRF token and are rate limited; erasure asks first, goes
through the one erasure path, and says what it kept and why."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from sqlalchemy import select

from mailer.compliance.models import StaffAccess
from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.delivery.models import Suppression
from mailer.subscribers.models import Subscriber
from tests.compliance.subjects import EMAIL, subscribed
from tests.conftest import CSRF
from tests.inbox import link
from tests.test_i18n import compiled_catalogs  # noqa: F401 (the fixture: .mo files)


def _person(session) -> Subscriber | None:
    session.expire_all()
    return session.scalar(select(Subscriber).where(Subscriber.email == EMAIL))


def _links(app):
    return app.extensions["mailer.delivery"].links


def _path(url: str) -> str:
    return url.removeprefix("http://localhost")


@pytest.fixture
def person(app, client, session, work, inbox):
    subscribed(client, session, work, inbox)
    return _person(session)


@pytest.fixture
def prefs(app, person) -> str:
    return _path(_links(app).preferences(person.id))


def _csrf(client, path: str) -> str:
    return CSRF.search(client.get(path).get_data(as_text=True)).group(1)


def test_the_preference_page_offers_download_and_erasure(client, prefs):
    html = client.get(prefs).get_data(as_text=True)
    assert "Your data" in html
    assert f'action="{prefs}/data"' in html and f'href="{prefs}/erase"' in html


def test_download_my_data_as_json_and_as_zip(client, session, prefs):
    token = _csrf(client, prefs)
    response = client.post(f"{prefs}/data", data={"csrf_token": token, "format": "json"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == 'attachment; filename="my-data.json"'
    document = json.loads(response.data)
    assert document["email"] == EMAIL
    assert [e["type"] for e in document["consent_events"]] == ["requested", "confirmed"]
    assert document["profile"]["name"] == "Erin"

    archive = client.post(f"{prefs}/data", data={"csrf_token": token, "format": "zip"})
    assert archive.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.data)) as z:
        rows = list(csv.DictReader(io.StringIO(z.read("consent_events.csv").decode())))
    assert [r["type"] for r in rows] == ["requested", "confirmed"]

    logged = session.scalars(select(StaffAccess).order_by(StaffAccess.id)).all()
    assert [(r.action, r.api_key_name, r.ip) for r in logged] == [
        ("subject.self_export", "self-service", None),
        ("subject.self_export", "self-service", None),
    ]
    assert [r.details for r in logged] == [{"format": "json"}, {"format": "zip"}]


def test_a_download_needs_our_csrf_token(client, prefs):
    response = client.post(f"{prefs}/data", data={"format": "json"})
    assert response.status_code == 400
    assert EMAIL not in response.get_data(as_text=True)


def test_only_a_preference_token_opens_the_data_pages(app, client, session, inbox, person):
    links = _links(app)
    confirm = _path(link(inbox.messages(EMAIL)[0], "confirm"))
    others = [
        confirm.replace("/confirm/", "/preferences/"),
        _path(links.unsubscribe(person.id, None, None)).replace("/unsubscribe/", "/preferences/"),
        "/preferences/not-a-token",
    ]
    token = _csrf(client, _path(links.preferences(person.id)))
    for base in others:
        assert client.get(f"{base}/erase").status_code == 400, base
        data = client.post(f"{base}/data", data={"csrf_token": token, "format": "json"})
        assert data.status_code == 400 and EMAIL not in data.get_data(as_text=True), base
        erase = client.post(f"{base}/erase", data={"csrf_token": token, "confirm": "yes"})
        assert erase.status_code == 400, base
    assert _person(session) is not None
    assert session.scalar(select(StaffAccess.id)) is None


def test_downloads_are_rate_limited(client, prefs):
    token = _csrf(client, prefs)
    codes = [client.post(f"{prefs}/data", data={"csrf_token": token}).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]


def test_erase_my_data_asks_first_then_keeps_only_the_proof(client, session, prefs, person):
    person_id = person.id
    page = client.get(f"{prefs}/erase")
    assert page.status_code == 200
    assert "This cannot be undone." in page.get_data(as_text=True)
    token = _csrf(client, f"{prefs}/erase")

    unconfirmed = client.post(f"{prefs}/erase", data={"csrf_token": token})
    assert unconfirmed.status_code == 400 and _person(session) is not None

    done = client.post(f"{prefs}/erase", data={"csrf_token": token, "confirm": "yes"})
    assert done.status_code == 200
    html = done.get_data(as_text=True)
    assert "Your data has been erased" in html and "17(3)(b) and (e)" in html
    assert _person(session) is None
    events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    assert [e.type for e in events][-2:] == [ConsentEventType.WITHDRAWN, ConsentEventType.ERASED]
    assert events[-1].source is ConsentSource.PREFERENCES and events[-1].actor == "self-service"
    assert all(e.email is None and e.ip is None and e.user_agent is None for e in events)
    assert chain.verify(session).ok
    assert session.scalar(select(Suppression.reason)).value == "erased"
    assert client.get(prefs).status_code == 400  # the link has nobody left to show
    [logged] = session.scalars(
        select(StaffAccess).where(StaffAccess.action == "subject.self_erase")
    ).all()
    assert logged.ip is None and logged.subscriber_id == person_id


@pytest.mark.parametrize(
    ("lang", "says"),
    [
        ("nb", ("Dine data", "Last ned dataene mine (JSON)", "Slett dataene mine")),
        ("da", ("Dine data", "Download mine data (JSON)", "Slet mine data")),
    ],
)
@pytest.mark.usefixtures("compiled_catalogs")
def test_the_data_pages_speak_the_persons_language(app, client, session, prefs, person, lang, says):
    person.locale = lang
    session.commit()
    html = client.get(prefs).get_data(as_text=True)
    for words in says:
        assert words in html, words
    assert "Download my data" not in html
    erase = client.get(f"{prefs}/erase").get_data(as_text=True)
    assert f'<html lang="{lang}"' in erase and "This cannot be undone." not in erase
