"""Access export and consent receipt: complete, exact, machine-readable."""

from __future__ import annotations

import jsonschema
import pytest

from mailer.compliance import access, erasure, receipts
from tests.compliance.subjects import EMAIL, subscribed
from tests.factories import CONSENT

# The Kantara Consent Receipt v1.1 top-level fields (domain notes), as a schema.
RECEIPT_SCHEMA = {
    "type": "object",
    "required": [
        "version",
        "jurisdiction",
        "consentTimestamp",
        "collectionMethod",
        "consentReceiptID",
        "language",
        "piiPrincipalId",
        "piiControllers",
        "policyUrl",
        "services",
        "sensitive",
        "spiCat",
    ],
    "properties": {
        "version": {"const": "KI-CR-v1.1.0"},
        "jurisdiction": {"type": "string", "minLength": 1},
        "consentTimestamp": {"type": "integer", "minimum": 1},
        "collectionMethod": {"type": "string", "minLength": 1},
        "consentReceiptID": {"type": "string", "format": "uuid", "minLength": 36},
        "language": {"type": "string", "minLength": 2},
        "piiPrincipalId": {"type": "string", "minLength": 3},
        "piiControllers": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": [
                    "piiController",
                    "contact",
                    "address",
                    "email",
                    "phone",
                    "piiControllerUrl",
                ],
                "properties": {
                    "piiController": {"type": "string", "minLength": 1},
                    "email": {"type": "string"},
                    "piiControllerUrl": {"type": "string"},
                },
            },
        },
        "policyUrl": {"type": "string", "minLength": 1},
        "services": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["service", "purposes"],
                "properties": {
                    "purposes": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": [
                                "purpose",
                                "purposeCategory",
                                "consentType",
                                "piiCategory",
                                "primaryPurpose",
                                "termination",
                                "thirdPartyDisclosure",
                            ],
                            "properties": {
                                "consentType": {"enum": ["EXPLICIT", "IMPLICIT"]},
                                "primaryPurpose": {"type": "boolean"},
                                "thirdPartyDisclosure": {"type": "boolean"},
                            },
                        },
                    }
                },
            },
        },
        "sensitive": {"type": "boolean"},
        "spiCat": {"type": "array"},
    },
}


def test_export_holds_everything_and_the_exact_texts(client, session, work, inbox):
    subscribed(client, session, work, inbox)
    document = access.export(session, EMAIL)
    assert document["email"] == EMAIL and document["profile"]["name"] == "Erin"
    assert [s["topic"] for s in document["subscriptions"]] == ["news"]
    assert [e["type"] for e in document["consent_events"]] == ["requested", "confirmed"]
    requested = document["consent_events"][0]
    assert requested["ip"] == "127.0.0.1" and requested["user_agent"] == "ErinBrowser/1.0"
    text = document["consent_texts"][requested["consent_text_sha256"]]["text"]
    assert text == CONSENT
    assert {m["kind"] for m in document["messages"]} == {"confirmation", "welcome"}


def test_receipt_validates_and_names_what_was_agreed(app, client, session, work, inbox):
    subscribed(client, session, work, inbox)
    controller = app.config["MAILER"].controller
    document = receipts.receipt(session, EMAIL, controller)
    jsonschema.validate(document, RECEIPT_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert document["piiPrincipalId"] == EMAIL
    assert [s["service"] for s in document["services"]] == ["News"]
    assert document == receipts.receipt(session, EMAIL, controller)  # stable id


def test_after_erasure_only_pseudonymous_proof_is_held(client, session, work, inbox):
    subscribed(client, session, work, inbox)
    erasure.erase(session, EMAIL, actor="dpo@example.org")
    document = access.export(session, EMAIL)
    assert document["profile"] is None and document["messages"] == []
    assert all(e["email"] is None and e["ip"] is None for e in document["consent_events"])
    assert document["consent_events"][-1]["type"] == "erased"


def test_unknown_address(session):
    with pytest.raises(access.NothingHeld):
        access.export(session, "nobody@example.com")
