"""A receiving server that misbehaves in sequence, under real `mailer worker` processes:
first it defers everyone (451, and now and then 421 with the connection closed), then it takes
mail but refuses some recipients for good (550), hangs up on some before the body and on others
right after it.

Afterwards every recipient is in exactly one final state: the deferred ones were retried and
reached the server once; the refused ones failed and are suppressed; those hung up on before
the body were retried and sent once; those hung up on after the body are `unknown` and were
never sent again. The campaign report agrees with the rows.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from mailer.delivery.models import Suppression
from mailer.subscribers.models import Subscriber
from tests.campaigns.conftest import make_audience, make_campaign
from tests.campaigns.processes import wait_for
from tests.reliability.smtp import HANG_UP, Script, ScriptedSmtp

RECIPIENTS = 240
DEFERRALS = 60  # RCPTs answered 451 (every tenth 421 and a closed connection) before phase two
REFUSED = {f"reader{i}@example.org" for i in range(7, RECIPIENTS, 40)}  # 550, for good
# Once each, on recipients phase one does not reach (senders claim the lowest ids first): a
# second temporary failure would mean the 2-minute back-off, and a slow test.
HUNG_UP_BEFORE_BODY = {"reader215@example.org", "reader235@example.org"}
HUNG_UP_AFTER_BODY = {"reader21@example.org", "reader121@example.org", "reader221@example.org"}


class Sequence:
    """Phase one: defer everyone for DEFERRALS answers. Phase two: the per-address faults."""

    def __init__(self) -> None:
        self.count = itertools.count()
        self.lock = threading.Lock()
        self.hung_up: set[str] = set()

    def rcpt(self, addr: str) -> str | None:
        with self.lock:
            n = next(self.count)
            if n < DEFERRALS:
                if n % 10 == 9:
                    return "421 4.7.0 Too many connections, try again later"
                return "451 4.3.0 Temporary local problem, try again later"
            if addr in REFUSED:
                return f"550 5.1.1 <{addr}>: Recipient address rejected: User unknown"
            if addr in HUNG_UP_BEFORE_BODY and addr not in self.hung_up:
                self.hung_up.add(addr)
                return HANG_UP
        return None


@pytest.fixture
def scripted_smtp():
    sequence = Sequence()
    server = ScriptedSmtp(
        Script(rcpt=sequence.rcpt, hang_up_after_data=lambda addr: addr in HUNG_UP_AFTER_BODY)
    )
    yield server
    server.stop()


def _read(app, query):
    with app.extensions["mailer.db"]() as session:
        return query(session)


def test_deferrals_refusals_and_hang_ups_end_in_one_final_state_each(
    restart_fleet, scripted_smtp, recorder
):
    app, procs, _ = restart_fleet(MAILER_SMTP_URL=scripted_smtp.url)
    session = app.extensions["mailer.db"]()
    topic, _ = make_audience(session, RECIPIENTS)
    campaign = make_campaign(session, topic)
    _, key = create_api_key(session, Role.MARKETER, "smtp faults")
    session.close()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post(f"/api/v1/campaigns/{campaign.id}/send", headers=headers).status_code == 202
    procs.start("cron")
    procs.start("worker")
    procs.start("worker")

    def status():
        return _read(
            app, lambda s: s.scalar(select(Campaign.status).where(Campaign.id == campaign.id))
        )

    # Deferred recipients come back after the first back-off (30 s): a generous bound.
    try:
        wait_for(lambda: status() is CampaignStatus.SENT, 300, "the end", 0.5)
    except AssertionError:
        raise AssertionError(f"{scripted_smtp.replies()}\n{procs.logs()}") from None

    rows = _read(
        app,
        lambda s: s.execute(
            select(Subscriber.email, Delivery.status, Delivery.attempts)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.campaign_id == campaign.id)
        ).all(),
    )
    state = {email: status for email, status, _ in rows}
    attempts = {email: n for email, _, n in rows}
    received = Counter(r.rcpt for r in scripted_smtp.received())
    unanswered = Counter(r.rcpt for r in scripted_smtp.unanswered())
    replies = scripted_smtp.replies()
    recorder.fault("smtp 451/421 deferrals", replies.get("451", 0) + replies.get("421", 0))
    recorder.fault("smtp 550 refusals", replies.get("550", 0))
    recorder.fault("smtp hang-up before the body", replies.get("hang up at RCPT", 0))
    recorder.fault("smtp hang-up after the body", sum(unanswered.values()))
    recorder.recipients_checked += RECIPIENTS
    duplicates = {a: n for a, n in (received + unanswered).items() if n > 1}
    recorder.duplicates += len(duplicates)
    sent = {a for a, s in state.items() if s is DeliveryStatus.SENT}
    recorder.losses += len(sent - set(received)) + RECIPIENTS - len(state)

    assert replies.get("451", 0) + replies.get("421", 0) == DEFERRALS, replies
    assert len(state) == RECIPIENTS
    assert not duplicates, f"reached the server twice: {duplicates}"
    # Refused for good: failed, suppressed, never delivered.
    assert {a for a, s in state.items() if s is DeliveryStatus.FAILED} == REFUSED
    assert not REFUSED & set(received)
    suppressed = _read(app, lambda s: s.scalar(select(func.count()).select_from(Suppression)))
    assert suppressed == len(REFUSED)
    # Hung up on after the body: in doubt, reported, never sent again.
    assert {a for a, s in state.items() if s is DeliveryStatus.UNKNOWN} == HUNG_UP_AFTER_BODY
    assert set(unanswered) == HUNG_UP_AFTER_BODY
    assert not HUNG_UP_AFTER_BODY & set(received)
    # Everyone else, deferred or hung up on before the body included, got it exactly once.
    assert sent == set(state) - REFUSED - HUNG_UP_AFTER_BODY
    assert sent == set(received)
    assert all(attempts[a] >= 2 for a in HUNG_UP_BEFORE_BODY), attempts
    assert sum(1 for a in sent if attempts[a] >= 2) >= DEFERRALS * 0.8, "the deferred were retried"
    report = client.get(f"/api/v1/campaigns/{campaign.id}/report", headers=headers).get_json()
    assert report["deliveries"]["sent"] == len(sent)
    assert report["deliveries"]["failed"] == len(REFUSED)
    assert report["deliveries"]["unknown"] == len(HUNG_UP_AFTER_BODY)
