"""Several senders in one worker job (`MAILER_SEND_CONCURRENCY`): side by side on PostgreSQL,
one at a time on SQLite, every recipient still sent exactly one message of their own."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer.campaigns import concurrency
from mailer.campaigns.models import Delivery, DeliveryStatus
from mailer.campaigns.sending import Next, RunResult
from mailer.database import utcnow
from tests.campaigns.conftest import make_audience, make_campaign


@pytest.fixture
def campaign_app(make_app, campaign_settings):
    # One sender job, small pages: any overlap the SMTP server sees is threads of one job.
    return make_app(
        campaign_settings(
            MAILER_SEND_JOBS="1", MAILER_SEND_CONCURRENCY="3", MAILER_SEND_BATCH_SIZE="10"
        )
    )


def test_one_job_sends_side_by_side_and_each_recipient_gets_their_own_message_once(
    api, campaign_session, run_jobs, faulty_smtp, db_kind
):
    faulty_smtp.behaviour.data_delay = 0.01  # long enough for the senders to overlap
    topic, ids = make_audience(campaign_session, 90)
    campaign = make_campaign(campaign_session, topic)

    assert api("post", f"/api/v1/campaigns/{campaign.id}/send").status_code == 202
    run_jobs()

    assert faulty_smtp.peak_side_by_side == (3 if db_kind == "postgresql" else 1)
    per_rcpt = faulty_smtp.by_recipient()
    assert len(per_rcpt) == 90 and set(per_rcpt.values()) == {1}
    for received in faulty_smtp.received:  # rendered for the one it went to
        msg = received.message()
        assert msg["To"].addresses[0].addr_spec == received.rcpt
        assert msg["Subject"] == f"Autumn offer for {received.rcpt.split('@')[0].capitalize()}"
    campaign_session.expire_all()
    rows = campaign_session.execute(
        select(Delivery.subscriber_id, Delivery.status, Delivery.attempts).where(
            Delivery.campaign_id == campaign.id
        )
    ).all()
    assert {r.subscriber_id for r in rows} == set(ids)
    assert {(r.status, r.attempts) for r in rows} == {(DeliveryStatus.SENT, 1)}
    body = api("get", f"/api/v1/campaigns/{campaign.id}").json
    assert body["status"] == "sent" and body["counts"]["sent"] == 90


def test_a_sender_that_fails_lets_the_others_finish_then_fails_the_job():
    finished = []

    def sender() -> RunResult:
        if not finished:
            finished.append("failed")
            raise RuntimeError("the database went away")
        finished.append("sent")
        return RunResult(Next.DONE, counts={"sent": 5})

    with pytest.raises(RuntimeError, match="went away"):
        concurrency.run(sender, 3)
    assert sorted(finished) == ["failed", "sent", "sent"]


def test_the_job_goes_on_at_once_if_any_sender_ran_out_of_time_else_at_the_earliest_time():
    soon, late = utcnow() + timedelta(seconds=5), utcnow() + timedelta(seconds=60)
    done = RunResult(Next.DONE, counts={"sent": 3})
    again = RunResult(Next.AGAIN, counts={"sent": 4, "failed": 1})

    merged = concurrency.merged([done, RunResult(Next.LATER, late), again])
    assert merged.next is Next.AGAIN
    assert merged.counts == {"sent": 7, "failed": 1}
    merged = concurrency.merged([RunResult(Next.LATER, late), done, RunResult(Next.LATER, soon)])
    assert (merged.next, merged.at) == (Next.LATER, soon)
    assert concurrency.merged([done, done]).next is Next.DONE


def test_sqlite_gets_one_sender_and_postgresql_at_most_what_the_pool_holds():
    assert concurrency.senders(4, "sqlite") == 1
    assert concurrency.senders(4, "postgresql") == 4
    assert concurrency.senders(50, "postgresql") == concurrency.MAX_SENDERS
    assert concurrency.senders(0, "postgresql") == 1
