"""Crash safety with real processes: kill -9 workers mid-campaign, pause and resume, the global
rate limit, and scheduling that survives downtime and lost Redis data.

The SMTP server is real (aiosmtpd on loopback) and remembers every message it accepted, so
"exactly once" is checked from the receiving side, not from our own bookkeeping.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.campaigns import concurrency
from mailer.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from mailer.database import utcnow
from mailer.extensions import jobs
from tests.campaigns.conftest import make_audience, make_campaign
from tests.campaigns.processes import wait_for


def _client(app):
    with app.app_context():
        from mailer.extensions import db

        _, key = create_api_key(db.session, Role.MARKETER, "faults")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    return lambda method, path, **kw: getattr(client, method)(path, headers=headers, **kw)


def _session(app):
    return app.extensions["mailer.db"]()


def _status(session, campaign_id):
    session.expire_all()
    status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    session.commit()
    return status


def _by_status(session, campaign_id):
    session.expire_all()
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.campaign_id == campaign_id)
        .group_by(Delivery.status)
    ).all()
    session.commit()
    return {s: n for s, n in rows}


def _sent_addresses(session, campaign_id, status):
    from mailer.subscribers.models import Subscriber

    rows = session.execute(
        select(Subscriber.email)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.campaign_id == campaign_id, Delivery.status == status)
    ).all()
    return {r[0] for r in rows}


def test_kill_9_workers_mid_campaign_nobody_missed_nobody_twice(fleet, faulty_smtp):
    app, procs = fleet()
    session = _session(app)
    topic, _ = make_audience(session, 1200)
    campaign = make_campaign(session, topic)
    # A slow server: each message spends most of its time inside SMTP, where kills land.
    faulty_smtp.behaviour.data_delay = 0.004
    api = _client(app)
    assert api("post", f"/api/v1/campaigns/{campaign.id}/send").status_code == 202
    procs.start("cron")
    workers = [procs.start("worker"), procs.start("worker")]

    rng = random.Random(7)
    for round_ in range(4):
        target = (round_ + 1) * 150
        wait_for(lambda t=target: len(faulty_smtp.received) >= t, 60, f"{target} messages")
        victim = workers.pop(rng.randrange(len(workers)))
        procs.kill9(victim)
        workers.append(procs.start("worker"))

    try:
        wait_for(lambda: _status(session, campaign.id) is CampaignStatus.SENT, 120, "the end")
    except AssertionError:
        raise AssertionError(f"{_by_status(session, campaign.id)}\n{procs.logs()}") from None

    counts = _by_status(session, campaign.id)
    assert sum(counts.values()) == 1200
    assert set(counts) <= {DeliveryStatus.SENT, DeliveryStatus.UNKNOWN}
    received = Counter(r.rcpt for r in faulty_smtp.received)
    duplicates = {k: v for k, v in received.items() if v > 1}
    assert not duplicates, f"sent twice: {duplicates}"
    sent = _sent_addresses(session, campaign.id, DeliveryStatus.SENT)
    unknown = _sent_addresses(session, campaign.id, DeliveryStatus.UNKNOWN)
    assert sent <= set(received), "a delivery marked sent never reached the server"
    assert set(received) <= sent | unknown
    # At most the one message on the wire per sender of a killed worker is in doubt.
    per_worker = concurrency.senders(
        app.config["MAILER"].send_concurrency, session.get_bind().dialect.name
    )
    assert len(unknown) <= procs.kills * per_worker
    report = api("get", f"/api/v1/campaigns/{campaign.id}/report").json
    assert report["deliveries"]["sent"] == len(sent)
    assert report["deliveries"]["unknown"] == len(unknown)
    session.close()


def test_pause_stops_every_worker_within_seconds_and_resume_finishes(fleet, faulty_smtp):
    app, procs = fleet(MAILER_SEND_RATE_PER_SECOND="40")
    session = _session(app)
    topic, _ = make_audience(session, 200)
    campaign = make_campaign(session, topic)
    api = _client(app)
    api("post", f"/api/v1/campaigns/{campaign.id}/send")
    procs.start("worker")
    procs.start("worker")
    wait_for(lambda: len(faulty_smtp.received) >= 40, 60, "sending to start")

    assert api("post", f"/api/v1/campaigns/{campaign.id}/pause").json["status"] == "paused"
    time.sleep(1.5)  # pause takes effect within a second (status checked every 0.5 s)
    after_pause = len(faulty_smtp.received)
    time.sleep(2)
    assert len(faulty_smtp.received) == after_pause, "mail kept going out while paused"
    assert after_pause < 200
    # Nothing is left claimed or on the wire while paused.
    session.expire_all()
    held = session.scalar(
        select(func.count()).where(
            Delivery.campaign_id == campaign.id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.claim.is_not(None),
        )
    )
    assert held == 0
    session.commit()

    assert api("post", f"/api/v1/campaigns/{campaign.id}/resume").status_code == 202
    wait_for(lambda: _status(session, campaign.id) is CampaignStatus.SENT, 60, "the end")
    received = Counter(r.rcpt for r in faulty_smtp.received)
    assert len(received) == 200 and set(received.values()) == {1}
    session.close()


def test_global_rate_limit_holds_across_workers(fleet, faulty_smtp):
    app, procs = fleet(MAILER_SEND_RATE_PER_SECOND="25")
    session = _session(app)
    topic, _ = make_audience(session, 100)
    campaign = make_campaign(session, topic)
    api = _client(app)
    api("post", f"/api/v1/campaigns/{campaign.id}/send")
    for _ in range(3):
        procs.start("worker")
    wait_for(lambda: _status(session, campaign.id) is CampaignStatus.SENT, 60, "the end")

    per_second = Counter(int(r.at) for r in faulty_smtp.received)
    assert len(faulty_smtp.received) == 100
    assert max(per_second.values()) <= 25, per_second
    # 100 messages at 25 per calendar second span at least four distinct seconds.
    assert len(per_second) >= 4
    session.close()


def test_hourly_limit_stops_sending_at_the_cap(fleet, faulty_smtp):
    app, procs = fleet(MAILER_SEND_RATE_PER_HOUR="30")
    session = _session(app)
    topic, _ = make_audience(session, 40)
    campaign = make_campaign(session, topic)
    api = _client(app)
    api("post", f"/api/v1/campaigns/{campaign.id}/send")
    procs.start("worker")
    wait_for(lambda: len(faulty_smtp.received) >= 30, 60, "the first 30")
    time.sleep(2)
    assert len(faulty_smtp.received) == 30
    assert _status(session, campaign.id) is CampaignStatus.SENDING
    # Pausing releases the sender that waits for the next hour.
    api("post", f"/api/v1/campaigns/{campaign.id}/pause")
    wait_for(
        lambda: _by_status(session, campaign.id).get(DeliveryStatus.SENDING, 0) == 0,
        10,
        "the sender to let go",
    )
    session.close()


def test_scheduled_campaign_sends_once_at_its_time(fleet, faulty_smtp):
    app, procs = fleet()
    session = _session(app)
    topic, _ = make_audience(session, 20)
    campaign = make_campaign(session, topic)
    api = _client(app)
    send_at = utcnow() + timedelta(seconds=3)
    response = api(
        "post", f"/api/v1/campaigns/{campaign.id}/schedule", json={"send_at": send_at.isoformat()}
    )
    assert response.status_code == 200, response.json
    assert response.json["status"] == "scheduled"
    procs.start("worker")
    procs.start("cron")
    wait_for(lambda: _status(session, campaign.id) is CampaignStatus.SENT, 60, "the end")
    received = faulty_smtp.received
    assert len(received) == 20
    assert Counter(r.rcpt for r in received).most_common(1)[0][1] == 1
    assert min(r.at for r in received) >= send_at.timestamp() - 1
    session.close()


def test_schedule_that_passed_while_down_and_redis_lost_is_sent_once(fleet, faulty_smtp):
    app, procs = fleet()
    session = _session(app)
    topic, _ = make_audience(session, 10)
    campaign = make_campaign(session, topic)
    api = _client(app)
    send_at = utcnow() + timedelta(seconds=1)
    api("post", f"/api/v1/campaigns/{campaign.id}/schedule", json={"send_at": send_at.isoformat()})
    time.sleep(2)  # everything is down when the time comes ...
    with app.app_context():
        jobs.redis.flushall()  # ... and Redis lost its data, the scheduled job with it
    procs.start("cron")
    procs.start("worker")
    procs.start("worker")
    wait_for(lambda: _status(session, campaign.id) is CampaignStatus.SENT, 60, "the end")
    time.sleep(2)  # more sweeps run: none may start it again
    received = Counter(r.rcpt for r in faulty_smtp.received)
    assert len(received) == 10 and set(received.values()) == {1}
    session.close()
