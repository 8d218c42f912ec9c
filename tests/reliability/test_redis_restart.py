"""Redis restarted mid-campaign: once with its data kept, once with everything lost (the queued
sender jobs, RQ's registries, the scheduled retries). The delivery rows in the database are the
truth, and `mailer cron`'s sweep restarts a campaign nobody is working on, so the campaign must
still finish: every recipient in one final state, nobody twice, nobody marked sent and missed.

Real processes on a Redis server of this suite's own (restarting the shared one would disturb
other tests), PostgreSQL of its own too, an SMTP server on loopback.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from mailer.subscribers.models import Subscriber
from tests.campaigns.conftest import make_audience, make_campaign
from tests.campaigns.processes import wait_for
from tests.reliability.postgres import retrying
from tests.reliability.redis_restart import RestartableRedis

RECIPIENTS = 1200


@pytest.fixture
def own_redis(tmp_path_factory):
    server = RestartableRedis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def _read(app, query):
    def run():
        with app.extensions["mailer.db"]() as session:
            return query(session)

    return retrying(run)


def test_redis_restarted_and_then_lost_mid_campaign_nobody_twice_nobody_lost(
    restart_fleet, own_redis, smtp_server, recorder
):
    app, procs, _ = restart_fleet(MAILER_REDIS_URL=own_redis.url)
    session = app.extensions["mailer.db"]()
    topic, _ = make_audience(session, RECIPIENTS)
    campaign = make_campaign(session, topic)
    _, key = create_api_key(session, Role.MARKETER, "redis restarts")
    session.close()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    smtp_server.behaviour.data_delay = 0.002
    assert client.post(f"/api/v1/campaigns/{campaign.id}/send", headers=headers).status_code == 202
    services = [("cron", procs.start("cron")), ("worker", procs.start("worker"))]
    services.append(("worker", procs.start("worker")))

    for share, keep in ((0.25, True), (0.6, False)):
        target = int(RECIPIENTS * share)
        wait_for(lambda t=target: len(smtp_server.received) >= t, 240, f"{target} messages")
        own_redis.restart(keep_data=keep)
        recorder.fault("redis restarted mid-campaign" if keep else "redis data lost mid-campaign")

    def status():
        return _read(
            app, lambda s: s.scalar(select(Campaign.status).where(Campaign.id == campaign.id))
        )

    # RQ usually reconnects, but a worker or `mailer cron` caught mid-call by the restart can
    # exit; in production its supervisor (systemd, Restart=always) starts it again, and so
    # does this loop. What must hold is the campaign's outcome, checked below.
    restarted = 0

    def supervised_status():
        nonlocal restarted
        for index, (kind, proc) in enumerate(services):
            if proc.poll() is not None:
                services[index] = (kind, procs.start(kind))
                restarted += 1
        return status()

    try:
        wait_for(lambda: supervised_status() is CampaignStatus.SENT, 300, "the end", 0.5)
    except AssertionError:
        raise AssertionError(f"{[p.poll() for p in procs.procs]}\n{procs.logs()}") from None

    counts = {
        s: n
        for s, n in _read(
            app,
            lambda s: s.execute(
                select(Delivery.status, func.count())
                .where(Delivery.campaign_id == campaign.id)
                .group_by(Delivery.status)
            ).all(),
        )
    }
    rows = _read(
        app,
        lambda s: s.execute(
            select(Subscriber.email, Delivery.status)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.campaign_id == campaign.id)
        ).all(),
    )
    sent = {e for e, st in rows if st is DeliveryStatus.SENT}
    unknown = {e for e, st in rows if st is DeliveryStatus.UNKNOWN}
    received = Counter(r.rcpt for r in smtp_server.received)
    duplicates = {a: n for a, n in received.items() if n > 1}
    lost = sent - set(received)
    recorder.recipients_checked += RECIPIENTS
    recorder.duplicates += len(duplicates)
    recorder.losses += len(lost) + RECIPIENTS - len(rows)
    recorder.notes.append(
        f"campaign across 2 Redis restarts: {len(sent)} sent, {len(unknown)} unknown, "
        f"{restarted} process(es) restarted by the supervisor loop"
    )

    assert sum(counts.values()) == RECIPIENTS, counts
    assert set(counts) <= {DeliveryStatus.SENT, DeliveryStatus.UNKNOWN}, counts
    assert not duplicates, f"sent twice: {duplicates}"
    assert not lost, f"marked sent but never received: {sorted(lost)[:10]}"
    assert set(received) <= sent | unknown
    # The database was never cut: no message was left in doubt.
    assert not unknown, counts
    report = client.get(f"/api/v1/campaigns/{campaign.id}/report", headers=headers).get_json()
    assert report["deliveries"]["sent"] == len(sent) == RECIPIENTS
