"""CSV import through the API: evidence makes a row active with its proof on the ledger; no
evidence means a confirmation email through the normal double opt-in; nobody is downgraded,
suppressed and erased addresses stay out, bad rows are reported by line and field."""

from __future__ import annotations

import hashlib
import io

import pytest
from sqlalchemy import select

from mailer.compliance import erasure
from mailer.compliance.models import StaffAccess
from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.delivery import suppressions
from mailer.delivery.models import SuppressionReason
from mailer.subscribers.models import Subscriber, SubscriberStatus, SubscriptionStatus
from tests.compliance.subjects import EMAIL, subscribed
from tests.factories import make_form
from tests.inbox import link

PAPER = "I want the Shop newsletter by email. Signed at the fair."
URL = "/api/v1/subscribers/import"


def post_csv(client, headers, text, **query):
    return client.post(
        URL,
        data=text.encode("utf-8"),
        content_type="text/csv",
        query_string=query,
        headers=headers,
    )


def imported(response):
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def person(session, email):
    session.expire_all()
    return session.scalar(select(Subscriber).where(Subscriber.email == email))


def events(session, type_=None):
    query = select(ConsentEvent).order_by(ConsentEvent.seq)
    if type_ is not None:
        query = query.where(ConsentEvent.type == type_)
    return session.scalars(query).all()


def test_rows_with_evidence_come_in_active_with_their_proof(client, session, inbox, marketer):
    make_form(session)
    text = (
        "email,name,topics,attr.city,consent_at,consent_source,consent_text,consent_ip\n"
        f'Ann@Example.com,Ann,news,Oslo,2026-05-14T10:30:00+02:00,"paper form at fair 2026-05",'
        f'"{PAPER}",192.0.2.7\n'
    )
    report = imported(post_csv(client, marketer, text))
    assert (report["rows"], report["created_active"], report["created_pending"]) == (1, 1, 0)
    assert report["row_errors"] == [] and report["skipped_rows"] == []

    ann = person(session, "ann@example.com")
    assert ann.status is SubscriberStatus.ACTIVE and ann.name == "Ann"
    assert ann.attributes == {"city": "Oslo"}
    assert [(s.topic.slug, s.status) for s in ann.subscriptions] == [
        ("news", SubscriptionStatus.ACTIVE)
    ]
    (event,) = events(session)
    assert event.type is ConsentEventType.IMPORTED and event.source is ConsentSource.IMPORT
    assert event.subscriber_id == ann.id and event.topics == ["news"]
    assert event.consent_text_sha256 == hashlib.sha256(PAPER.encode()).hexdigest()
    assert event.evidence["consent_text"] == PAPER
    assert event.evidence["consent_at"] == "2026-05-14T08:30:00+00:00"
    assert event.evidence["consent_source"] == "paper form at fair 2026-05"
    assert event.evidence["import_id"] == report["import_id"]
    assert event.ip == "192.0.2.7" and event.ip_hmac and event.actor.startswith("apikey:")
    assert chain.verify(session).ok
    assert inbox.messages() == []  # consent is proven: no confirmation to send


def test_a_form_version_is_evidence_too(client, session, marketer):
    form = make_form(session, topics=("news", "offers"))
    version = form.current_version
    text = (
        "email,topics,consent_at,form_version_id\n"
        f"bo@example.com,offers,2026-01-02,{version.id}\n"
        f'cy@example.com,news;offers,2026-01-03T12:00:00Z,"{version.id}"\n'
    )
    report = imported(post_csv(client, marketer, text))
    assert report["created_active"] == 2
    first, second = events(session)
    assert (first.form_id, first.form_version_id) == (form.id, version.id)
    assert first.consent_text_sha256 == version.consent_text_sha256
    assert "consent_text" not in first.evidence  # the version holds the text
    assert first.evidence["consent_at"] == "2026-01-02T00:00:00+00:00"
    assert second.topics == ["news", "offers"]
    assert person(session, "bo@example.com").source_form_id == form.id


def test_rows_without_evidence_get_a_confirmation_email(client, session, work, inbox, marketer):
    form = make_form(session)
    text = "email,name,locale\ndee@example.com,Dee,nb\neve@example.com,,\n"
    report = imported(post_csv(client, marketer, text, form=form.id))
    assert (report["created_pending"], report["created_active"]) == (2, 0)
    dee = person(session, "dee@example.com")
    assert dee.status is SubscriberStatus.PENDING and dee.name == "Dee" and dee.locale == "nb"
    requested = events(session, ConsentEventType.REQUESTED)
    assert len(requested) == 2
    assert requested[0].evidence["channel"] == "import"
    assert requested[0].evidence["import_id"] == report["import_id"]
    assert requested[0].form_version_id == form.current_version.id

    work()
    mail = inbox.only("dee@example.com")
    assert len(inbox.messages("eve@example.com")) == 1
    # The normal double opt-in: the link confirms on POST.
    path = link(mail, "confirm").removeprefix("http://localhost")
    page = client.get(path).get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post(path, data={"csrf_token": token})
    assert person(session, "dee@example.com").status is SubscriberStatus.ACTIVE

    # Importing the same file again mails nobody and changes nothing.
    again = imported(post_csv(client, marketer, text, form=form.id))
    assert (again["unchanged"], again["created_pending"], again["updated"]) == (2, 0, 0)
    work()
    assert len(inbox.messages()) == 2


def test_an_import_never_downgrades_an_active_subscriber(client, session, work, inbox, marketer):
    subscribed(client, session, work, inbox)
    form_id = person(session, EMAIL).source_form_id
    before = len(inbox.messages())
    ledger_before = len(events(session))
    text = f"email,name\n{EMAIL.upper()},Erin Changed\n"
    report = imported(post_csv(client, marketer, text, form=form_id, topic="news"))
    assert report["updated"] == 1  # the name changed; nothing else
    evidence = f"email,topics,consent_at,consent_text\n{EMAIL},news,2020-01-01,Old paper text\n"
    assert imported(post_csv(client, marketer, evidence))["unchanged"] == 1
    erin = person(session, EMAIL)
    assert erin.status is SubscriberStatus.ACTIVE and erin.name == "Erin Changed"
    assert [s.status for s in erin.subscriptions] == [SubscriptionStatus.ACTIVE]
    assert len(events(session)) == ledger_before
    work()
    assert len(inbox.messages()) == before


def test_withdrawn_topics_come_back_only_with_newer_evidence(client, session, marketer):
    form = make_form(session)
    first = "email,topics,consent_at,consent_text\nfay@example.com,news,2026-01-01,Yes please\n"
    imported(post_csv(client, marketer, first))
    fay = person(session, "fay@example.com")
    fay.subscriptions[0].status = SubscriptionStatus.UNSUBSCRIBED  # she unsubscribed today
    fay.status = SubscriberStatus.UNSUBSCRIBED
    session.commit()

    plain = imported(post_csv(client, marketer, "email\nfay@example.com\n", form=form.id))
    assert plain["skipped"] == 1 and "unsubscribed" in plain["skipped_rows"][0]["reason"]
    old = imported(post_csv(client, marketer, first))
    assert old["skipped"] == 1 and "withdrawn after" in old["skipped_rows"][0]["reason"]
    assert person(session, "fay@example.com").status is SubscriberStatus.UNSUBSCRIBED

    fresh = imported(post_csv(client, marketer, first.replace("2026-01-01", utcnow().isoformat())))
    assert fresh["updated"] == 1
    assert person(session, "fay@example.com").status is SubscriberStatus.ACTIVE
    assert [e.type for e in events(session)] == [ConsentEventType.IMPORTED] * 2


def test_rows_without_evidence_need_a_form(client, session, marketer):
    make_form(session)
    report = imported(post_csv(client, marketer, "email\nann@example.com\n", topic="news"))
    assert report["invalid"] == 1 and report["row_errors"][0]["field"] == "form"
    assert person(session, "ann@example.com") is None


def test_suppressed_and_erased_addresses_are_skipped(client, session, work, inbox, marketer):
    subscribed(client, session, work, inbox)
    erasure.erase(session, EMAIL, actor="dpo")
    suppressions.add(session, "bounced@example.com", SuppressionReason.HARD_BOUNCE)
    session.commit()
    form = make_form(session)
    text = (
        "email,consent_at,consent_text\n"
        f"{EMAIL},2026-01-01,Yes\n"
        "bounced@example.com,2026-01-01,Yes\n"
        "bounced@example.com,,\n"
        f"{EMAIL},,\n"
    )
    report = imported(post_csv(client, marketer, text, form=form.id, topic="news"))
    assert report["skipped"] == 4 and report["created_active"] == report["created_pending"] == 0
    reasons = {(r["line"], r["reason"].split(" ")[0]) for r in report["skipped_rows"]}
    assert reasons == {(2, "erased"), (3, "suppressed"), (4, "suppressed"), (5, "erased")}
    assert person(session, EMAIL) is None and person(session, "bounced@example.com") is None


def test_bad_rows_are_reported_by_line_and_field(client, session, marketer):
    form = make_form(session, topics=("news", "offers"))
    text = (
        "email,topics,locale,consent_at,consent_text,consent_ip,form_version_id\n"
        "ok@example.com,news,,2026-01-01,Yes,,\n"  # 2
        "not-an-address,news,,2026-01-01,Yes,,\n"  # 3
        "unknown@example.com,news;nope,,2026-01-01,Yes,,\n"  # 4
        "date@example.com,news,,14/05/2026,Yes,,\n"  # 5
        "future@example.com,news,,2999-01-01,Yes,,\n"  # 6
        "half@example.com,news,,2026-01-01,,,\n"  # 7: evidence without the text
        "ip@example.com,news,,2026-01-01,Yes,999.1.1.1,\n"  # 8
        "locale@example.com,news,fr,2026-01-01,Yes,,\n"  # 9
        '"multi@example.com",news,,2026-01-01,"two\nlines",,\n'  # 10-11
        "version@example.com,news,,2026-01-01,,,99999999999999999999\n"  # 12
        "cells@example.com,news,,2026-01-01,Yes,,,extra\n"  # 13
        "notopic@example.com,,,2026-01-01,Yes,,\n"  # 14: two topics on no form
        ",news,,,,,\n"  # 15
        "\n"
        "last@example.com,offers,,2026-01-01,Yes,,\n"  # 17
    )
    report = imported(post_csv(client, marketer, text))
    errors = {(e["line"], e["field"]) for e in report["row_errors"]}
    assert errors == {
        (3, "email"),
        (4, "topics"),
        (5, "consent_at"),
        (6, "consent_at"),
        (7, "consent_text"),
        (8, "consent_ip"),
        (9, "locale"),
        (12, "form_version_id"),
        (13, "file"),
        (14, "topics"),
        (15, "email"),
    }
    assert all(e["message"] for e in report["row_errors"])
    assert (report["rows"], report["invalid"], report["created_active"]) == (14, 11, 3)
    assert person(session, "multi@example.com") is not None
    assert person(session, "last@example.com") is not None
    assert form.id  # the form exists, but rows with evidence need no form


def test_a_line_that_is_not_utf8_stops_the_import_there(client, session, marketer):
    make_form(session)
    body = (
        b"email,topics,consent_at,consent_text\n"
        b"one@example.com,news,2026-01-01,Yes\n"
        b"two@example.com,news,2026-01-01,Caf\xe9\n"
        b"three@example.com,news,2026-01-01,Yes\n"
    )
    response = client.post(URL, data=body, content_type="text/csv", headers=marketer)
    report = imported(response)
    assert report["stopped_at_line"] == 3 and report["created_active"] == 1
    assert report["row_errors"][0]["field"] == "file"
    assert person(session, "three@example.com") is None


def test_multipart_upload_larger_than_the_public_limit(client, session, marketer):
    make_form(session)
    rows = "".join(f"p{i}@example.com,news,2026-01-01,Yes\n" for i in range(3000))
    text = "\ufeffemail,topics,consent_at,consent_text\n" + rows  # with a BOM, as Excel writes
    assert len(text.encode()) > client.application.config["MAX_CONTENT_LENGTH"]
    response = client.post(
        URL,
        data={"file": (io.BytesIO(text.encode()), "people.csv", "text/csv")},
        content_type="multipart/form-data",
        headers=marketer,
    )
    report = imported(response)
    assert report["created_active"] == 3000 and report["rows"] == 3000
    # Public endpoints keep their small limit.
    big = {"email": "x@example.com", "consent": True, "name": "x" * 70_000}
    assert client.post("/subscribe/news", json=big).status_code == 413


def test_the_import_has_its_own_upper_limit(client, session, marketer, monkeypatch):
    from mailer.api import subscribers

    monkeypatch.setattr(subscribers, "IMPORT_MAX_BYTES", 100_000)
    make_form(session)
    text = "email\n" + "".join(f"p{i}@example.com\n" for i in range(10_000))
    response = post_csv(client, marketer, text, topic="news")
    assert response.status_code == 413
    assert session.scalar(select(Subscriber)) is None


@pytest.mark.parametrize(
    ("text", "query", "status", "field"),
    [
        ("", {}, 422, "file"),
        ("name\nAnn\n", {}, 422, "file"),
        ("email,phone\nann@example.com,123\n", {}, 422, "file"),
        ("email,email\nann@example.com,ann@example.com\n", {}, 422, "file"),
        (f"email,attr.{'k' * 65}\nann@example.com,1\n", {}, 422, "file"),
        ("email\nann@example.com\n", {"form": 999}, 422, "form"),
        ("email\nann@example.com\n", {"topic": "nope"}, 422, "topic"),
        ("email\nann@example.com\n", {"form": "x"}, 422, "form"),
    ],
)
def test_a_file_that_cannot_be_imported_is_refused_whole(
    client, session, marketer, text, query, status, field
):
    make_form(session)
    response = post_csv(client, marketer, text, **query)
    assert response.status_code == status
    assert field in response.get_json()["errors"], response.get_json()
    assert session.scalar(select(Subscriber)) is None


def test_the_upload_must_be_csv(client, session, marketer):
    no_file = client.post(
        URL, data={"other": "x"}, content_type="multipart/form-data", headers=marketer
    )
    assert no_file.status_code == 422 and "file" in no_file.get_json()["errors"]
    as_json = client.post(URL, json={"email": "a@example.com"}, headers=marketer)
    assert as_json.status_code == 415 and "content_type" in as_json.get_json()["errors"]


def test_the_import_is_on_the_staff_audit_log(client, session, marketer):
    form = make_form(session)
    report = imported(post_csv(client, marketer, "email\nann@example.com\n", form=form.id))
    (entry,) = session.scalars(select(StaffAccess)).all()
    assert entry.action == "subscribers.import" and entry.api_key_name == "CRM sync"
    assert entry.details == {"form": form.id, "import_id": report["import_id"]}
    assert entry.endpoint == "POST /api/v1/subscribers/import"
