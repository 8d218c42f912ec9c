"""POST /webhooks/bounces and /webhooks/bounces/raw as a relay or a mailbox forwarder calls them,
and `mailer bounces ingest` on a Maildir."""

from __future__ import annotations

import mailbox
import subprocess
import sys

import pytest
from sqlalchemy import select

from mailer.delivery import suppressions
from mailer.delivery.models import Suppression, SuppressionReason
from mailer.pseudonyms import keyed
from mailer.subscribers.models import Subscriber
from mailer.tracking.models import Bounce, BounceKind, BounceSource
from tests.tracking.conftest import Factory, message_id, process_env, sample

SECRET = "whsec-0f8e7d6c5b4a39281706f5e4d3c2b1a0"
BEARER = {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture
def hook_settings(make_settings):
    return make_settings(MAILER_BOUNCE_WEBHOOK_SECRET=SECRET)


@pytest.fixture
def hook(make_app, hook_settings):
    return make_app(hook_settings).test_client()


@pytest.fixture
def hook_session(hook):
    s = hook.application.extensions["mailer.db"]()
    yield s
    s.close()


def _count(session, subscriber_id: int) -> int:
    session.expire_all()
    return session.get(Subscriber, subscriber_id).bounce_count


def test_without_a_configured_secret_the_webhook_does_not_exist(client):
    assert (
        client.post("/webhooks/bounces", json={"type": "hard"}, headers=BEARER).status_code == 404
    )
    raw = client.post(
        "/webhooks/bounces/raw", data=b"x", headers={**BEARER, "Content-Type": "message/rfc822"}
    )
    assert raw.status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {SECRET}"},
        {"X-Webhook-Secret": SECRET[:-1]},
        {"Authorization": f"Bearer {SECRET}x"},
    ],
)
def test_a_missing_or_wrong_secret_is_401(hook, hook_session, headers):
    event = {"type": "hard", "email": "ann@example.com"}
    response = hook.post("/webhooks/bounces", json=event, headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {
        "errors": {"authorization": ["a valid webhook secret is required"]}
    }
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    raw = hook.post(
        "/webhooks/bounces/raw", data=b"x", headers={**headers, "Content-Type": "message/rfc822"}
    )
    assert raw.status_code == 401 and "authorization" in raw.get_json()["errors"]
    assert not suppressions.is_blocked(hook_session, "ann@example.com")


def test_validation_errors_name_the_field(hook):
    def errors(body):
        response = hook.post("/webhooks/bounces", json=body, headers=BEARER)
        assert response.status_code == 400
        return response.get_json()["errors"]

    assert set(errors({"type": "bounced", "email": "a@example.com"})) == {"type"}
    assert errors({"type": "hard"}) == {
        "email": ["Give the recipient's email, our message_id, or both."]
    }
    assert set(errors({"type": "hard", "email": "not an address"})) == {"email"}
    assert set(errors({"type": "hard", "email": "a@example.com", "status": "5.1"})) == {"status"}
    assert set(errors({"type": "soft", "email": "a@example.com", "occurred_at": "yesterday"})) == {
        "occurred_at"
    }
    assert set(
        errors([{"type": "hard", "email": "a@example.com"}, {"email": "b@example.com"}])
    ) == {"1.type"}
    assert set(errors("hard")) == {"body"}
    assert set(errors([{"type": "hard", "email": "a@example.com"}] * 1001)) == {"body"}
    not_json = hook.post("/webhooks/bounces", data="type=hard", headers=BEARER)
    assert not_json.status_code == 400 and "body" in not_json.get_json()["errors"]


def test_a_hard_bounce_by_message_id_suppresses_the_delivery_subscriber(
    hook, hook_session, hook_settings
):
    sent = Factory(hook_session).sent()
    event = {
        "type": "hard",
        "message_id": message_id(hook_settings, sent.delivery),
        "status": "5.1.1",
        "diagnostic": "550 5.1.1 <ann@example.com> user unknown",
        "occurred_at": "2026-05-01T10:00:00+02:00",
        "provider_event_id": "ignored-extra-field",
    }
    response = hook.post("/webhooks/bounces", json=event, headers=BEARER)
    assert response.status_code == 200
    assert response.get_json() == {
        "recorded": 1,
        "results": [
            {"recorded": True, "kind": "hard", "delivery_id": sent.delivery.id, "suppressed": True}
        ],
    }
    assert suppressions.is_blocked(hook_session, "ann@example.com")
    assert _count(hook_session, sent.subscriber.id) == 1
    bounce = hook_session.scalar(select(Bounce))
    assert bounce.source is BounceSource.WEBHOOK and bounce.status == "5.1.1"
    assert bounce.occurred_at.isoformat() == "2026-05-01T08:00:00+00:00"
    assert "ann@example.com" not in bounce.diagnostic

    # The relay retries the same call: nothing new.
    again = hook.post("/webhooks/bounces", json=event, headers={"X-Webhook-Secret": SECRET})
    assert again.status_code == 200 and again.get_json()["recorded"] == 0
    assert _count(hook_session, sent.subscriber.id) == 1


def test_a_batch_larger_than_ordinary_requests_is_accepted(hook):
    """Relays batch events; the webhook takes more than the app's 64 KB form limit."""
    event = {"type": "soft", "email": "ann@example.com", "diagnostic": "x" * 1000}
    events = [
        {**event, "occurred_at": f"2026-05-01T{10 + i // 60:02d}:{i % 60:02d}:00Z"}
        for i in range(70)
    ]
    response = hook.post("/webhooks/bounces", json=events, headers=BEARER)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["recorded"] == 70


def test_a_batch_with_complaints_and_strangers(hook, hook_session):
    sent = Factory(hook_session).sent(email="bob@example.com")
    events = [
        {"type": "complaint", "email": "Bob@Example.com"},
        {"type": "soft", "email": "bob@example.com", "status": "4.2.2"},
        {"type": "hard", "message_id": "<c1.d1.0123456789abcdef@elsewhere.example>"},
    ]
    response = hook.post("/webhooks/bounces", json=events, headers=BEARER)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["recorded"] for r in results] == [True, True, False]
    assert results[2] == {"recorded": False, "ignored": "not a message we sent"}
    row = hook_session.scalar(
        select(Suppression).where(Suppression.email_hmac == keyed(hook_session, "bob@example.com"))
    )
    assert row.reason is SuppressionReason.COMPLAINT
    assert _count(hook_session, sent.subscriber.id) == 1  # the soft bounce, not the complaint


def test_raw_bounce_messages_are_parsed_and_recorded(hook, hook_session, hook_settings):
    sent = Factory(hook_session).sent()
    raw = sample("gmail-hard-no-such-user.eml", message_id(hook_settings, sent.delivery))
    assert len(raw) > 4096
    headers = {**BEARER, "Content-Type": "message/rfc822"}
    response = hook.post("/webhooks/bounces/raw", data=raw, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["results"] == [
        {"recorded": True, "kind": "hard", "delivery_id": sent.delivery.id, "suppressed": True}
    ]
    assert suppressions.is_blocked(hook_session, "ann@example.com")

    autoreply = sample("vacation-autoreply.eml", message_id(hook_settings, sent.delivery))
    response = hook.post("/webhooks/bounces/raw", data=autoreply, headers=headers)
    assert response.status_code == 200 and response.get_json() == {"recorded": 0, "results": []}

    wrong_type = hook.post(
        "/webhooks/bounces/raw", data=raw, headers={**BEARER, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415 and "content_type" in wrong_type.get_json()["errors"]
    empty = hook.post("/webhooks/bounces/raw", data=b"", headers=headers)
    assert empty.status_code == 400 and "body" in empty.get_json()["errors"]


def test_cli_ingests_a_maildir_once(session, factory, settings, tmp_path):
    ann = factory.sent()
    bob = factory.sent(email="bob@example.com", campaign=ann.campaign)
    box = mailbox.Maildir(str(tmp_path / "bounces"), create=True)
    box.add(sample("postfix-hard-user-unknown.eml", message_id(settings, ann.delivery)))
    box.add(sample("yahoo-arf-abuse.eml", message_id(settings, bob.delivery), "bob@example.com"))
    box.add(sample("vacation-autoreply.eml", message_id(settings, ann.delivery)))

    def run():
        return subprocess.run(
            [sys.executable, "-m", "mailer.cli", "bounces", "ingest", str(tmp_path / "bounces")],
            env=process_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = run()
    assert first.returncode == 0, first.stderr
    assert "3 messages read: 2 bounces or complaints recorded, 0 already recorded" in first.stdout
    kinds = {b.delivery_id: b.kind for b in session.scalars(select(Bounce))}
    assert kinds == {ann.delivery.id: BounceKind.HARD, bob.delivery.id: BounceKind.COMPLAINT}
    assert suppressions.is_blocked(session, "ann@example.com")
    assert suppressions.is_blocked(session, "bob@example.com")

    second = run()
    assert "0 bounces or complaints recorded, 2 already recorded" in second.stdout
    assert len(session.scalars(select(Bounce)).all()) == 2

    missing = subprocess.run(
        [sys.executable, "-m", "mailer.cli", "bounces", "ingest", str(tmp_path / "nope")],
        env=process_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode != 0 and "does not exist" in missing.stderr
