"""Bounces and complaints end in the suppression list and the profile, with evidence rows."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from mailer.campaigns.models import Delivery
from mailer.delivery import suppressions
from mailer.delivery.models import Suppression, SuppressionReason
from mailer.pseudonyms import keyed
from mailer.subscribers.models import Subscriber
from mailer.tracking import ingest
from mailer.tracking.bounces import SOFT_BOUNCE_LIMIT, record_bounce, record_smtp_refusal
from mailer.tracking.models import Bounce, BounceKind, BounceSource
from tests.tracking.conftest import message_id, sample

REPLY = "550 5.1.1 <ann@example.com>: Recipient address rejected: User unknown"


def _suppression(session, email: str) -> Suppression | None:
    return session.scalar(
        select(Suppression).where(Suppression.email_hmac == keyed(session, email))
    )


def _bounce_count(session, subscriber_id: int) -> int:
    session.expire_all()
    return session.get(Subscriber, subscriber_id).bounce_count


def test_an_smtp_hard_bounce_suppresses_and_counts_with_evidence(session, factory):
    sent = factory.sent()
    bounce = record_bounce(
        session,
        delivery_id=sent.delivery.id,
        email=None,
        kind=BounceKind.HARD,
        source=BounceSource.SMTP,
        status="5.1.1",
        detail=REPLY,
    )
    session.commit()
    assert bounce.suppressed and bounce.kind is BounceKind.HARD
    assert (bounce.delivery_id, bounce.campaign_id) == (sent.delivery.id, sent.campaign.id)
    assert bounce.email_hmac == keyed(session, "ann@example.com")
    assert "ann@example.com" not in bounce.diagnostic and "User unknown" in bounce.diagnostic
    assert suppressions.is_blocked(session, "ann@example.com")
    row = _suppression(session, "ann@example.com")
    assert row.reason is SuppressionReason.HARD_BOUNCE
    assert "ann@example.com" not in row.detail and "5.1.1" in row.detail
    assert _bounce_count(session, sent.subscriber.id) == 1


def test_the_senders_smtp_refusal_helper_reads_the_reply(session, factory):
    hard = factory.sent()
    blocked = factory.sent(email="bob@example.com", campaign=hard.campaign)
    first = record_smtp_refusal(
        session, delivery_id=hard.delivery.id, email=None, code=550, detail=REPLY
    )
    policy = record_smtp_refusal(
        session,
        delivery_id=blocked.delivery.id,
        email="bob@example.com",
        code=550,
        detail="550 5.7.1 Message rejected due to local policy",
    )
    session.commit()
    assert (first.kind, first.status, first.suppressed) == (BounceKind.HARD, "5.1.1", True)
    assert (policy.kind, policy.status, policy.suppressed) == (BounceKind.SOFT, "5.7.1", False)
    assert not suppressions.is_blocked(session, "bob@example.com")


def test_one_soft_bounce_counts_but_does_not_suppress(session, factory):
    sent = factory.sent()
    bounce = record_bounce(
        session,
        delivery_id=sent.delivery.id,
        email=None,
        kind=BounceKind.SOFT,
        source=BounceSource.SMTP,
        status="4.2.2",
        detail="452 4.2.2 Mailbox full",
    )
    session.commit()
    assert not bounce.suppressed
    assert not suppressions.is_blocked(session, "ann@example.com")
    assert _bounce_count(session, sent.subscriber.id) == 1


def _soft_bounces(session, factory, subscriber, count: int) -> list[Bounce]:
    out = []
    for _ in range(count):
        sent = factory.sent(subscriber=subscriber)
        out.append(
            record_bounce(
                session,
                delivery_id=sent.delivery.id,
                email=None,
                kind=BounceKind.SOFT,
                source=BounceSource.DSN,
                status="4.4.7",
                detail="Delivery time expired",
            )
        )
        session.commit()
    return out


def test_soft_bounces_on_every_one_of_the_last_messages_suppress(session, factory):
    subscriber = factory.subscriber()
    bounces = _soft_bounces(session, factory, subscriber, SOFT_BOUNCE_LIMIT)
    assert [b.suppressed for b in bounces] == [False] * (SOFT_BOUNCE_LIMIT - 1) + [True]
    assert _suppression(session, "ann@example.com").reason is SuppressionReason.HARD_BOUNCE
    assert _bounce_count(session, subscriber.id) == SOFT_BOUNCE_LIMIT


def test_a_message_read_in_between_breaks_the_row_of_soft_bounces(session, factory):
    subscriber = factory.subscriber()
    _soft_bounces(session, factory, subscriber, 2)
    read = factory.sent(subscriber=subscriber)
    session.execute(
        update(Delivery)
        .where(Delivery.id == read.delivery.id)
        .values(opened_at=read.delivery.sent_at)
    )
    session.commit()
    bounces = _soft_bounces(session, factory, subscriber, SOFT_BOUNCE_LIMIT - 1)
    assert not any(b.suppressed for b in bounces)
    assert not suppressions.is_blocked(session, "ann@example.com")


def test_a_complaint_suppresses_without_counting_as_a_bounce(session, factory):
    sent = factory.sent()
    bounce = record_bounce(
        session,
        delivery_id=sent.delivery.id,
        email=None,
        kind=BounceKind.COMPLAINT,
        source=BounceSource.ARF,
        status="",
        detail="feedback-type abuse",
    )
    session.commit()
    assert bounce.suppressed
    assert _suppression(session, "ann@example.com").reason is SuppressionReason.COMPLAINT
    assert _bounce_count(session, sent.subscriber.id) == 0


def test_an_address_we_do_not_know_is_still_suppressed(session):
    bounce = record_bounce(
        session,
        delivery_id=None,
        email="Stranger@Example.com",
        kind=BounceKind.HARD,
        source=BounceSource.WEBHOOK,
        status="5.1.1",
        detail="",
    )
    session.commit()
    assert bounce.delivery_id is None and bounce.suppressed
    assert suppressions.is_blocked(session, "stranger@example.com")


def test_a_report_fed_in_twice_is_recorded_and_counted_once(session, factory, settings):
    sent = factory.sent()
    raw = sample("postfix-hard-user-unknown.eml", message_id(settings, sent.delivery))
    [(first, new)] = ingest.ingest_message(session, raw, settings.secret_key)
    [(again, new_again)] = ingest.ingest_message(session, raw, settings.secret_key)
    assert new and not new_again and again.id == first.id
    # The same bounce reported another way (Gmail's notice for the same delivery) too.
    gmail = sample("gmail-hard-no-such-user.eml", message_id(settings, sent.delivery))
    [(_row, new_gmail)] = ingest.ingest_message(session, gmail, settings.secret_key)
    assert not new_gmail
    assert len(session.scalars(select(Bounce)).all()) == 1
    assert _bounce_count(session, sent.subscriber.id) == 1


def test_each_sample_lands_on_its_delivery(session, factory, settings):
    """DSN and ARF samples through ingestion: rows, suppression, counts (see test_reports)."""
    cases = {
        "postfix-hard-user-unknown.eml": (BounceKind.HARD, True, 1),
        "gmail-hard-no-such-user.eml": (BounceKind.HARD, True, 1),
        "outlook-ndr-recipient-not-found.eml": (BounceKind.HARD, True, 1),
        "postfix-delayed.eml": (BounceKind.SOFT, False, 1),
        "postfix-gmail-policy-block.eml": (BounceKind.SOFT, False, 1),
        "yahoo-arf-abuse.eml": (BounceKind.COMPLAINT, True, 0),
        "outlook-jmrp-abuse-redacted.eml": (BounceKind.COMPLAINT, True, 0),
    }
    for n, (name, (kind, suppressed, counted)) in enumerate(cases.items()):
        email = f"reader{n}@example.com"
        sent = factory.sent(email=email, sent_ago=timedelta(days=1))
        # The report may name another address (forwarding) or none: the delivery decides.
        raw = sample(name, message_id(settings, sent.delivery), recipient="someone@else.example")
        [(bounce, new)] = ingest.ingest_message(session, raw, settings.secret_key)
        assert new and bounce.kind is kind, name
        assert (bounce.delivery_id, bounce.campaign_id) == (sent.delivery.id, sent.campaign.id)
        assert bounce.email_hmac == keyed(session, email)
        assert suppressions.is_blocked(session, email) is suppressed, name
        assert _bounce_count(session, sent.subscriber.id) == counted, name
    assert not suppressions.is_blocked(session, "someone@else.example")


def test_a_report_about_mail_we_did_not_send_changes_nothing(session, factory, settings):
    sent = factory.sent()
    forged = "<c1.d1.0123456789abcdef@news.example.org>"
    raw = sample("outlook-jmrp-abuse-redacted.eml", forged)
    assert ingest.ingest_message(session, raw, settings.secret_key) == []
    assert not suppressions.is_blocked(session, "ann@example.com")
    assert session.scalars(select(Bounce)).all() == []
    assert _bounce_count(session, sent.subscriber.id) == 0
