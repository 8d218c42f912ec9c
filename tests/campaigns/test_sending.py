"""A campaign through the real path: API → RQ → render → MIME → SMTP on loopback → delivery rows."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from mailer.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from mailer.database import utcnow
from mailer.delivery import suppressions
from mailer.delivery.models import Suppression, SuppressionReason
from mailer.subscribers.models import Subscription, SubscriptionStatus
from tests.campaigns.conftest import make_audience, make_campaign


def _statuses(session, campaign_id):
    session.expire_all()
    rows = session.execute(
        select(Delivery.subscriber_id, Delivery.status, Delivery.skip_reason).where(
            Delivery.campaign_id == campaign_id
        )
    ).all()
    return {sid: (status, reason) for sid, status, reason in rows}


def test_every_recipient_gets_the_campaign_exactly_once(
    api, campaign_session, run_jobs, faulty_smtp
):
    topic, ids = make_audience(campaign_session, 300)
    campaign = make_campaign(campaign_session, topic)

    response = api("post", f"/api/v1/campaigns/{campaign.id}/send")
    assert response.status_code == 202, response.json
    assert response.json["status"] == "sending"
    run_jobs()

    per_rcpt = faulty_smtp.by_recipient()
    assert len(per_rcpt) == 300
    assert set(per_rcpt.values()) == {1}
    # Each message was rendered for the recipient it went to (the next one is rendered while
    # the current one's mark commits).
    for received in faulty_smtp.received:
        msg = received.message()
        assert msg["To"].addresses[0].addr_spec == received.rcpt
        assert (
            f"Hello {received.rcpt.split('@')[0].capitalize()},"
            in msg.get_body(preferencelist=("html",)).get_content()
        )
    states = _statuses(campaign_session, campaign.id)
    assert {s for s, _ in states.values()} == {DeliveryStatus.SENT}
    assert set(states) == set(ids)

    body = api("get", f"/api/v1/campaigns/{campaign.id}").json
    assert body["status"] == "sent"
    assert body["counts"]["sent"] == 300 and body["counts"]["total"] == 300
    report = api("get", f"/api/v1/campaigns/{campaign.id}/report").json
    assert report["deliveries"]["sent"] == 300
    assert report["recipients"] == 300


def test_personalised_message_with_one_click_headers(api, campaign_session, run_jobs, faulty_smtp):
    topic, _ = make_audience(campaign_session, 2)
    campaign = make_campaign(campaign_session, topic)
    api("post", f"/api/v1/campaigns/{campaign.id}/send")
    run_jobs()

    msg = next(r for r in faulty_smtp.received if r.rcpt == "reader1@example.org").message()
    assert msg["Subject"] == "Autumn offer for Reader1"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<http")
    assert "news" in msg["List-Id"]
    assert msg["Feedback-ID"]
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "Hello Reader1" in html


def test_one_click_post_from_the_campaign_header_unsubscribes_get_and_head_do_not(
    api, campaign_app, campaign_session, run_jobs, faulty_smtp
):
    topic, ids = make_audience(campaign_session, 1)
    campaign = make_campaign(campaign_session, topic)
    api("post", f"/api/v1/campaigns/{campaign.id}/send")
    run_jobs()
    msg = faulty_smtp.received[0].message()
    url = msg["List-Unsubscribe"].split(",")[0].strip().strip("<>")
    path = url.split("://", 1)[1].split("/", 1)[1]
    client = campaign_app.test_client()

    def status():
        campaign_session.expire_all()
        return campaign_session.scalar(
            select(Subscription.status).where(Subscription.subscriber_id == ids[0])
        )

    assert client.head("/" + path).status_code in (200, 405)
    assert client.get("/" + path).status_code == 200
    assert status() is SubscriptionStatus.ACTIVE
    answer = client.post("/" + path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    assert status() is SubscriptionStatus.UNSUBSCRIBED


def test_suppressed_erased_and_unsubscribed_recipients_are_skipped_with_a_reason(
    api, campaign_session, run_jobs, faulty_smtp
):
    topic, ids = make_audience(campaign_session, 5)
    campaign = make_campaign(campaign_session, topic)
    # Resolve first, then things change before the senders get there.
    api("post", f"/api/v1/campaigns/{campaign.id}/send")
    from mailer.campaigns import lifecycle

    assert lifecycle.begin(campaign_session, campaign.id)
    suppressions.add(campaign_session, "reader0@example.org", SuppressionReason.HARD_BOUNCE)
    campaign_session.execute(
        update(Subscription)
        .where(Subscription.subscriber_id == ids[1])
        .values(status=SubscriptionStatus.UNSUBSCRIBED)
    )
    campaign_session.commit()
    run_jobs()

    states = _statuses(campaign_session, campaign.id)
    assert states[ids[0]] == (DeliveryStatus.SKIPPED, "suppressed")
    assert states[ids[1]] == (DeliveryStatus.SKIPPED, "unsubscribed")
    assert sorted(faulty_smtp.by_recipient()) == [f"reader{i}@example.org" for i in (2, 3, 4)]
    assert campaign_session.get(Campaign, campaign.id).status is CampaignStatus.SENT


def test_permanent_refusal_fails_and_suppresses_temporary_is_retried_later(
    api, campaign_app, campaign_session, run_jobs, faulty_smtp
):
    topic, ids = make_audience(campaign_session, 4)
    campaign = make_campaign(campaign_session, topic)
    replies = {
        "reader1@example.org": "550 5.1.1 No such user",
        "reader2@example.org": "451 4.7.1 Try again later",
    }
    faulty_smtp.behaviour.rcpt = lambda addr: replies.get(addr)
    api("post", f"/api/v1/campaigns/{campaign.id}/send")
    run_jobs()

    states = _statuses(campaign_session, campaign.id)
    assert states[ids[0]][0] is DeliveryStatus.SENT
    assert states[ids[1]][0] is DeliveryStatus.FAILED
    assert states[ids[2]][0] is DeliveryStatus.PENDING  # waiting for its retry time
    assert states[ids[3]][0] is DeliveryStatus.SENT
    assert suppressions.is_blocked(campaign_session, "reader1@example.org")
    assert not suppressions.is_blocked(campaign_session, "reader2@example.org")
    assert campaign_session.get(Campaign, campaign.id).status is CampaignStatus.SENDING

    # The server recovers; the retry comes due.
    faulty_smtp.behaviour.rcpt = lambda addr: None
    campaign_session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == ids[2])
        .values(retry_at=utcnow() - timedelta(seconds=1))
    )
    campaign_session.commit()
    from mailer import tasks

    with campaign_app.app_context():  # what RQ's scheduler does at the retry time
        tasks.enqueue(tasks.SEND_CAMPAIGN, campaign.id)
    run_jobs()
    states = _statuses(campaign_session, campaign.id)
    assert states[ids[2]][0] is DeliveryStatus.SENT
    assert faulty_smtp.by_recipient()["reader2@example.org"] == 1
    assert campaign_session.get(Campaign, campaign.id).status is CampaignStatus.SENT
    assert campaign_session.scalar(select(Suppression.reason)) is SuppressionReason.HARD_BOUNCE


def test_connection_dropped_after_the_body_is_unknown_and_never_resent(
    api, campaign_session, run_jobs, faulty_smtp
):
    topic, ids = make_audience(campaign_session, 3)
    campaign = make_campaign(campaign_session, topic)
    faulty_smtp.behaviour.drop_after_data = lambda addr: addr == "reader1@example.org"
    api("post", f"/api/v1/campaigns/{campaign.id}/send")
    run_jobs()
    states = _statuses(campaign_session, campaign.id)
    assert states[ids[1]][0] is DeliveryStatus.UNKNOWN
    # The others still went, on a new connection; the campaign is complete.
    assert states[ids[0]][0] is DeliveryStatus.SENT
    assert states[ids[2]][0] is DeliveryStatus.SENT
    assert faulty_smtp.by_recipient() == {"reader0@example.org": 1, "reader2@example.org": 1}


def test_campaign_messages_verify_under_dkim_with_the_configured_key(
    make_app, campaign_settings, faulty_smtp, tmp_path
):
    """The whole path signs: dkimpy's verifier accepts what the SMTP server received, and the
    signature covers From and both one-click headers (RFC 8058 section 4)."""
    import base64

    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mailer.accounts.models import Role
    from mailer.accounts.users import create_api_key

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "dkim.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    app = make_app(
        campaign_settings(
            MAILER_DKIM_DOMAIN="shop.example",
            MAILER_DKIM_SELECTOR="nov2026",
            MAILER_DKIM_PRIVATE_KEY=str(pem),
        )
    )
    session = app.extensions["mailer.db"]()
    topic, _ = make_audience(session, 3)
    campaign = make_campaign(session, topic, subject="Høstens tilbud til {{ subscriber.name }}")
    with app.app_context():
        from mailer.extensions import db

        _, secret = create_api_key(db.session, Role.MARKETER)
    client = app.test_client()
    sent = client.post(
        f"/api/v1/campaigns/{campaign.id}/send", headers={"Authorization": f"Bearer {secret}"}
    )
    assert sent.status_code == 202, sent.json
    from rq import SimpleWorker

    from mailer.extensions import jobs

    with app.app_context():
        SimpleWorker(jobs.queues, connection=jobs.redis).work(burst=True)

    def lookup(name, timeout=5):
        return record if name == b"nov2026._domainkey.shop.example." else None

    assert len(faulty_smtp.received) == 3
    for received in faulty_smtp.received:
        assert dkim.verify(received.data, dnsfunc=lookup)
        signature = received.message()["DKIM-Signature"]
        signed = signature.split("h=", 1)[1].split(";", 1)[0].replace(" ", "").lower()
        for header in ("from", "to", "subject", "date", "message-id"):
            assert header in signed.split(":")
        assert "list-unsubscribe" in signed.split(":")
        assert "list-unsubscribe-post" in signed.split(":")
        assert "a=rsa-sha256" in signature.replace(" ", "")
        assert "c=relaxed/relaxed" in signature.replace(" ", "")
        tampered = received.data.replace(b"news@shop.example", b"news@sh0p.example", 1)
        assert tampered != received.data and not dkim.verify(tampered, dnsfunc=lookup)
    session.close()


def test_paused_before_its_recipients_were_known_then_resumed_reaches_everyone(
    api, campaign_session, run_jobs, faulty_smtp
):
    """A pause that lands before the start job: the start job does nothing while paused, and
    resume must still resolve the recipients (it must never finish a campaign sent to nobody)."""
    topic, _ = make_audience(campaign_session, 5)
    campaign = make_campaign(campaign_session, topic)
    api("post", f"/api/v1/campaigns/{campaign.id}/send")
    api("post", f"/api/v1/campaigns/{campaign.id}/pause")
    run_jobs()
    assert api("get", f"/api/v1/campaigns/{campaign.id}").json["status"] == "paused"
    assert faulty_smtp.received == []

    assert api("post", f"/api/v1/campaigns/{campaign.id}/resume").status_code == 202
    run_jobs()
    body = api("get", f"/api/v1/campaigns/{campaign.id}").json
    assert body["status"] == "sent" and body["counts"]["sent"] == 5
    assert len(faulty_smtp.by_recipient()) == 5


def test_an_hourly_cap_hands_the_page_back_with_every_outcome_recorded(
    campaign_app, campaign_settings, campaign_session, faulty_smtp
):
    """At the hourly cap the sender does not sleep on its claims: it writes what it knows
    (a 451 goes back for a retry, never to "unknown"), releases the rest, and comes back
    when the window opens."""
    from mailer.campaigns import lifecycle
    from mailer.campaigns.sending import Next, Sender

    settings = campaign_settings(MAILER_SEND_RATE_PER_HOUR="2")
    topic, ids = make_audience(campaign_session, 3)
    campaign = make_campaign(campaign_session, topic)
    faulty_smtp.behaviour.rcpt = lambda a: "451 4.7.1 later" if a.startswith("reader0@") else None
    with campaign_app.app_context():
        from mailer.extensions import jobs

        jobs.redis.flushdb()
        lifecycle.send_now(campaign_session, campaign.id)
        assert lifecycle.begin(campaign_session, campaign.id)
        sessions = campaign_app.extensions["mailer.db"]
        result = Sender(
            sessions, settings, campaign_app.extensions["mailer.tokens"], campaign.id
        ).run()
    assert result.next is Next.LATER
    assert result.at is not None and (result.at - utcnow()).total_seconds() > 5
    states = _statuses(campaign_session, campaign.id)
    assert states[ids[0]][0] is DeliveryStatus.PENDING  # its retry comes later
    assert states[ids[1]][0] is DeliveryStatus.SENT
    assert states[ids[2]][0] is DeliveryStatus.PENDING
    held = campaign_session.scalar(
        select(func.count()).where(
            Delivery.campaign_id == campaign.id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.claim.is_not(None),
        )
    )
    assert held == 0


def test_cancelled_and_paused_campaigns_settle(campaign_session):
    from mailer.campaigns import lifecycle

    topic, ids = make_audience(campaign_session, 3)
    campaign = make_campaign(campaign_session, topic, status=CampaignStatus.CANCELLED)
    campaign.finished_at = utcnow()
    long_ago = utcnow() - timedelta(hours=1)
    campaign_session.add_all(
        [
            Delivery(
                campaign_id=campaign.id,
                subscriber_id=ids[0],
                status=DeliveryStatus.SENDING,
                claim="dead",
                claimed_at=long_ago,
            ),
            Delivery(
                campaign_id=campaign.id,
                subscriber_id=ids[1],
                status=DeliveryStatus.PENDING,
                retry_at=utcnow() + timedelta(minutes=5),
            ),
            Delivery(campaign_id=campaign.id, subscriber_id=ids[2], status=DeliveryStatus.SENT),
        ]
    )
    campaign_session.commit()
    assert lifecycle.settle(campaign_session, utcnow(), sending_lease=180) == 2
    states = _statuses(campaign_session, campaign.id)
    assert states[ids[0]][0] is DeliveryStatus.UNKNOWN
    assert states[ids[1]] == (DeliveryStatus.SKIPPED, "cancelled")
    assert states[ids[2]][0] is DeliveryStatus.SENT
