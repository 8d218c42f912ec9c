"""Data subjects' rights through the API: the proof of consent with its texts and a receipt,
the access export, and an erasure that needs the address confirmed."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from mailer.compliance.models import StaffAccess
from mailer.consent import chain
from mailer.consent.models import ConsentEvent
from mailer.pseudonyms import keyed
from mailer.subscribers.models import Subscriber
from tests.compliance.subjects import EMAIL, subscribed
from tests.factories import CONSENT, make_form

BASE = "/api/v1/subjects"


def test_consent_shows_every_event_the_texts_and_a_receipt(
    client, session, work, inbox, compliance
):
    subscribed(client, session, work, inbox)
    response = client.get(f"{BASE}/{EMAIL.upper()}/consent", headers=compliance)
    assert response.status_code == 200
    body = response.get_json()
    assert body["email"] == EMAIL and body["subject_hmac"] == keyed(session, EMAIL)
    assert [e["type"] for e in body["events"]] == ["requested", "confirmed"]
    requested = body["events"][0]
    assert requested["email"] == EMAIL and requested["user_agent"] == "ErinBrowser/1.0"
    assert requested["form_version"] == 1 and requested["row_hash"]
    (text,) = body["consent_texts"]
    assert text["text"] == CONSENT and text["version"] == 1
    assert text["sha256"] == requested["consent_text_sha256"]
    receipt = body["receipt"]
    assert receipt["version"] == "KI-CR-v1.1.0" and receipt["piiPrincipalId"] == EMAIL
    assert [s["service"] for s in receipt["services"]] == ["News"]

    (entry,) = session.scalars(select(StaffAccess)).all()
    assert entry.action == "subject.consent"
    assert (
        entry.subject_hmac == keyed(session, EMAIL) and entry.subject_masked == "e***@example.com"
    )
    assert entry.endpoint == "GET /api/v1/subjects/<email>/consent"


def test_imported_consent_texts_are_shown_from_the_evidence(client, session, marketer, compliance):
    make_form(session)
    paper = "Yes, post me nothing but email me the news. Signed on paper."
    csv_text = f'email,topics,consent_at,consent_text\nann@example.com,news,2026-01-01,"{paper}"\n'
    client.post(
        "/api/v1/subscribers/import",
        data=csv_text.encode(),
        content_type="text/csv",
        headers=marketer,
    )
    body = client.get(f"{BASE}/ann@example.com/consent", headers=compliance).get_json()
    assert [e["type"] for e in body["events"]] == ["imported"]
    (text,) = body["consent_texts"]
    assert text["text"] == paper and text["form_id"] is None
    assert text["sha256"] == hashlib.sha256(paper.encode()).hexdigest()
    receipt = body["receipt"]  # consent imported with evidence has its receipt too
    assert receipt["collectionMethod"].startswith("imported with recorded evidence")
    assert receipt["consentTimestamp"] == 1767225600  # 2026-01-01, when it was given


def test_unknown_and_invalid_addresses(client, session, compliance):
    for path in ("consent", "export"):
        missing = client.get(f"{BASE}/nobody@example.com/{path}", headers=compliance)
        assert missing.status_code == 404 and "email" in missing.get_json()["errors"]
        bad = client.get(f"{BASE}/not-an-address/{path}", headers=compliance)
        assert bad.status_code == 422 and "email" in bad.get_json()["errors"]
    erase = client.post(
        f"{BASE}/nobody@example.com/erase",
        json={"confirm": "nobody@example.com"},
        headers=compliance,
    )
    assert erase.status_code == 404


def test_export_is_the_access_document(client, session, work, inbox, compliance):
    subscribed(client, session, work, inbox)
    response = client.get(f"{BASE}/{EMAIL}/export", headers=compliance)
    assert response.status_code == 200
    document = response.get_json()
    assert document["email"] == EMAIL and document["profile"]["name"] == "Erin"
    assert [s["topic"] for s in document["subscriptions"]] == ["news"]
    assert len(document["consent_events"]) == 2 and document["consent_texts"]
    assert {m["kind"] for m in document["messages"]} == {"confirmation", "welcome"}
    (entry,) = session.scalars(select(StaffAccess)).all()
    assert entry.action == "subject.export" and entry.subject_masked == "e***@example.com"


def test_erasure_needs_the_address_confirmed(client, session, work, inbox, compliance):
    subscribed(client, session, work, inbox)
    url = f"{BASE}/{EMAIL}/erase"
    for body in ({}, {"confirm": ""}, {"confirm": "someone@example.com"}, {"confirm": 5}):
        response = client.post(url, json=body, headers=compliance)
        assert response.status_code == 422, body
        assert "confirm" in response.get_json()["errors"]
    assert session.scalar(select(Subscriber.id).where(Subscriber.email == EMAIL)) is not None

    response = client.post(url, json={"confirm": f" {EMAIL.upper()} "}, headers=compliance)
    assert response.status_code == 200
    result = response.get_json()
    assert result["withdrawn"] == ["news"] and result["events_pseudonymised"] == 3
    assert result["subject_hmac"] == keyed(session, EMAIL)
    session.expire_all()
    assert session.scalar(select(Subscriber.id).where(Subscriber.email == EMAIL)) is None
    assert all(e.email is None for e in session.scalars(select(ConsentEvent)))
    assert chain.verify(session).ok
    (event,) = [e for e in session.scalars(select(ConsentEvent)) if e.type.value == "erased"]
    assert event.actor.startswith("apikey:") and event.source.value == "api"

    again = client.post(url, json={"confirm": EMAIL}, headers=compliance)
    assert again.status_code == 404
    # The proof is still there, pseudonymised; the log of who looked holds no address.
    proof = client.get(f"{BASE}/{EMAIL}/consent", headers=compliance).get_json()
    assert [e["type"] for e in proof["events"]][-1] == "erased"
    assert all(e["email"] is None for e in proof["events"])
    logged = session.scalars(select(StaffAccess).order_by(StaffAccess.id)).all()
    assert [e.action for e in logged] == ["subject.erase", "subject.erase", "subject.consent"]
    assert all(EMAIL not in str(e.details) and e.subject_masked != EMAIL for e in logged)
