"""Topics and forms pages through the test client: topics created and edited, forms with
their consent text versions (a change is a new version, the old ones stay readable), the
confirmation rate from the ledger, the embed snippet, and the hosted form framed only by
our own origin."""

from __future__ import annotations

import html
import re

from sqlalchemy import select

from mailer.accounts.models import Role
from mailer.subscribers.models import Form, FormVersion, Topic
from tests import signups
from tests.admin.conftest import csrf_of
from tests.compliance.subjects import subscribed
from tests.factories import CONSENT, make_form

NEW_TEXT = "Yes, email me the newsletter every week.\nI can unsubscribe at any time."


def test_marketers_create_and_edit_topics(staff_client, session):
    client = staff_client(Role.MARKETER)
    token = csrf_of(client, "/admin/topics/new")
    response = client.post(
        "/admin/topics/new",
        data={"csrf_token": token, "slug": "offers", "name": "Offers", "description": "Deals"},
    )
    assert response.status_code == 302
    topic = session.scalar(select(Topic).where(Topic.slug == "offers"))
    assert (topic.name, topic.description) == ("Offers", "Deals")

    response = client.post(
        "/admin/topics/new", data={"csrf_token": token, "slug": "offers", "name": "Again"}
    )
    assert response.status_code == 409
    assert "a topic with this slug exists" in response.get_data(as_text=True)
    response = client.post(
        "/admin/topics/new", data={"csrf_token": token, "slug": "no spaces", "name": ""}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "use letters, digits, - and _" in page and 'value="no spaces"' in page

    response = client.post(
        f"/admin/topics/{topic.id}",
        data={"csrf_token": token, "slug": "hacked", "name": "Weekly offers", "description": ""},
    )
    assert response.status_code == 302
    session.expire_all()
    topic = session.get(Topic, topic.id)
    assert (topic.slug, topic.name, topic.description) == ("offers", "Weekly offers", "")
    response = client.post(f"/admin/topics/{topic.id}", data={"csrf_token": token, "name": ""})
    assert response.status_code == 422
    assert "Length must be between 1 and 200" in response.get_data(as_text=True)


def test_the_topic_list_counts_subscriptions_by_status(staff_client, session, client, work, inbox):
    subscribed(client, session, work, inbox)
    page = staff_client(Role.MARKETER).get("/admin/topics/").get_data(as_text=True)
    row = re.search(r"<tr><td><a [^>]*>News</a>.*?</tr>", page, re.S).group(0)
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["1", "0", "0"]


def form_data(token, **overrides):
    data = {
        "csrf_token": token,
        "slug": "shop",
        "name": "Shop news",
        "topics": ["news"],
        "locale": "nb",
        "consent_text": CONSENT,
        "ask_name": "y",
        "allowed_origins": "https://Shop.example\n\nhttps://blog.example:8443",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_a_form_is_created_and_a_changed_consent_text_is_a_new_version(staff_client, session):
    make_form(session, slug="other")
    client = staff_client(Role.MARKETER)
    token = csrf_of(client, "/admin/topics/forms/new")
    response = client.post("/admin/topics/forms/new", data=form_data(token))
    assert response.status_code == 302
    form = session.scalar(select(Form).where(Form.slug == "shop"))
    assert [t.slug for t in form.topics] == ["news"] and form.locale == "nb"
    assert form.ask_name and not form.welcome_enabled and not form.welcome_gmail_tip
    assert form.allowed_origins == ["https://shop.example", "https://blog.example:8443"]
    assert [v.consent_text for v in form.versions] == [CONSENT]
    url = f"/admin/topics/forms/{form.id}"
    assert response.headers["Location"] == url

    # Saved again as a browser sends a textarea (CRLF): the same text, no new version.
    same = CONSENT.replace("\n", "\r\n")
    assert client.post(url, data=form_data(token, consent_text=same)).status_code == 302
    # A changed text becomes version 2.
    crlf = NEW_TEXT.replace("\n", "\r\n")
    assert client.post(url, data=form_data(token, consent_text=crlf)).status_code == 302
    session.expire_all()
    versions = session.scalars(
        select(FormVersion).where(FormVersion.form_id == form.id).order_by(FormVersion.version)
    ).all()
    assert [(v.version, v.consent_text) for v in versions] == [(1, CONSENT), (2, NEW_TEXT)]

    page = client.get(url).get_data(as_text=True)
    listed = page.split('id="versions-h"')[1]
    assert listed.index("Version 2") < listed.index("Version 1")
    for v in versions:  # each text word for word, with its SHA-256
        assert html.escape(v.consent_text) in listed and v.consent_text_sha256 in listed
    assert html.escape(NEW_TEXT) in page.split('id="f-consent_text"')[1].split("</textarea>")[0]


def test_form_errors_name_the_field_and_keep_the_input(staff_client, session):
    make_form(session, slug="taken")
    client = staff_client(Role.MARKETER)
    token = csrf_of(client, "/admin/topics/forms/new")
    response = client.post(
        "/admin/topics/forms/new",
        data=form_data(token, allowed_origins="https://ok.example\nftp://nope", topics=None),
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "allowed_origins.1" in page and "use an origin like https://shop.example" in page
    assert "<strong>topics</strong>" in page
    assert "ftp://nope" in page and 'value="Shop news"' in page
    response = client.post("/admin/topics/forms/new", data=form_data(token, slug="taken"))
    assert response.status_code == 409
    assert "a form with this slug exists" in response.get_data(as_text=True)
    response = client.post("/admin/topics/forms/new", data=form_data(token, consent_text="  "))
    assert response.status_code == 422
    assert session.scalar(select(Form).where(Form.slug == "shop")) is None


def test_the_form_list_shows_topics_locale_and_the_confirmation_rate(
    staff_client, session, client, work, inbox
):
    subscribed(client, session, work, inbox)  # asked and confirmed through form "news"
    client.post(
        "/subscribe/news",
        json={"email": "later@example.com", "consent": True},
        headers={"Origin": "https://shop.example"},
    )  # asked, not confirmed
    signups.drain(client.application)
    page = staff_client(Role.MARKETER).get("/admin/topics/forms/").get_data(as_text=True)
    row = re.search(r"<tr><td><a [^>]*>news</a>.*?</tr>", page, re.S).group(0)
    assert ">news</span>" in row and "<td>en</td>" in row
    assert re.findall(r'<td class="num">([^<]+)</td>', row) == ["v1", "2", "1", "50%"]


def test_the_form_page_shows_the_embed_snippet_and_frames_the_hosted_form(staff_client, session):
    form = make_form(session)
    client = staff_client(Role.MARKETER)
    page = client.get(f"/admin/topics/forms/{form.id}").get_data(as_text=True)
    snippet = client.get("/subscribe/news/embed").get_data(as_text=True)
    shown = page.split('id="embed-snippet"')[1].split(">", 1)[1].split("</textarea>")[0]
    assert html.unescape(shown) == snippet
    assert 'data-copy="#embed-snippet"' in page
    assert '<iframe class="preview phone" src="/subscribe/news"' in page

    hosted = client.get("/subscribe/news")
    assert "frame-ancestors 'self'" in hosted.headers["Content-Security-Policy"]
    assert hosted.headers["X-Frame-Options"] == "SAMEORIGIN"
    # Only that page: the rest keeps refusing to be framed.
    other = client.get(f"/admin/topics/forms/{form.id}")
    assert "frame-ancestors 'none'" in other.headers["Content-Security-Policy"]
    assert other.headers["X-Frame-Options"] == "DENY"


def test_unknown_topics_and_forms_are_404(staff_client):
    client = staff_client(Role.MARKETER)
    assert client.get("/admin/topics/424242").status_code == 404
    assert client.get("/admin/topics/forms/424242").status_code == 404


def test_compliance_staff_may_not_open_topics_or_forms(staff_client, session):
    form = make_form(session)
    client = staff_client(Role.COMPLIANCE)
    token = csrf_of(client)
    assert client.get("/admin/topics/").status_code == 403
    response = client.post(f"/admin/topics/forms/{form.id}", data=form_data(token))
    assert response.status_code == 403
    session.expire_all()
    assert session.get(Form, form.id).slug == "news"
