"""The sender's per-message statement: the previous outcome and the next mark in one committed
statement, fenced by the claim token and the expected state, on both databases."""

from __future__ import annotations

from sqlalchemy import select

from mailer.campaigns.marks import Marks
from mailer.campaigns.models import Delivery, DeliveryStatus
from mailer.database import utcnow
from tests.campaigns.conftest import make_audience, make_campaign


def _deliveries(session, count):
    topic, ids = make_audience(session, count)
    campaign = make_campaign(session, topic)
    rows = [
        Delivery(campaign_id=campaign.id, subscriber_id=sid, claim="mine", claimed_at=utcnow())
        for sid in ids
    ]
    session.add_all(rows)
    session.commit()
    return [r.id for r in rows]


def _state(session, delivery_id):
    session.expire_all()
    row = session.execute(
        select(Delivery.status, Delivery.attempts, Delivery.sent_at, Delivery.claim).where(
            Delivery.id == delivery_id
        )
    ).one()
    session.commit()
    return row


def test_one_statement_records_the_sent_message_and_marks_the_next(campaign_session):
    session = campaign_session
    first, second, third = _deliveries(session, 3)
    marks = Marks(session.get_bind())
    try:
        assert marks.step("mine", utcnow(), None, first)
        status, attempts, sent_at, _ = _state(session, first)
        assert (status, attempts, sent_at) == (DeliveryStatus.SENDING, 1, None)

        assert marks.step("mine", utcnow(), first, second)
        status, attempts, sent_at, _ = _state(session, first)
        assert status is DeliveryStatus.SENT and attempts == 1 and sent_at is not None
        assert _state(session, second)[:2] == (DeliveryStatus.SENDING, 1)
        assert _state(session, third)[0] is DeliveryStatus.PENDING

        # The last outcome of a page goes on its own.
        assert not marks.step("mine", utcnow(), second, None)
        assert _state(session, second)[0] is DeliveryStatus.SENT
    finally:
        marks.close()


def test_nothing_changes_without_the_claim_or_in_another_state(campaign_session):
    session = campaign_session
    first, second = _deliveries(session, 2)
    marks = Marks(session.get_bind())
    try:
        # A sender whose claim went stale (someone else holds the page) changes nothing.
        assert not marks.step("stale", utcnow(), None, first)
        assert _state(session, first)[0] is DeliveryStatus.PENDING
        # A delivery already on the wire is never marked again (no second send) ...
        assert marks.step("mine", utcnow(), None, first)
        assert not marks.step("mine", utcnow(), None, first)
        assert _state(session, first)[1] == 1
        # ... and an outcome is written only over `sending`: a pending row stays pending.
        assert not marks.step("mine", utcnow(), second, None)
        assert _state(session, second)[0] is DeliveryStatus.PENDING
        assert not marks.step("stale", utcnow(), first, None)
        assert _state(session, first)[0] is DeliveryStatus.SENDING
    finally:
        marks.close()
