"""What a campaign report shows from tracking, what erasure leaves behind, and the schedule."""

from __future__ import annotations

from sqlalchemy import func, select

from mailer import tasks
from mailer.campaigns.models import Delivery
from mailer.compliance import erasure
from mailer.tracking.bounces import record_bounce
from mailer.tracking.models import Bounce, BounceKind, BounceSource, TrackingEvent
from mailer.tracking.reporting import campaign_figures
from tests.tracking.conftest import path_of

READER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"}


def _flush(app, work) -> None:
    with app.app_context():
        tasks.enqueue(tasks.FLUSH_TRACKING)
    work()


def test_campaign_figures_keep_people_and_machines_apart(
    app, client, session, work, factory, links
):
    ann = factory.sent()
    bob = factory.sent(email="bob@example.com", campaign=ann.campaign)
    first, second = "https://example.org/first", "https://example.org/second"
    client.get(path_of(links.open_pixel(ann.delivery.id)), headers=READER)
    client.get(
        path_of(links.open_pixel(bob.delivery.id)),
        headers={"User-Agent": "Mozilla/5.0"},
        environ_base={"REMOTE_ADDR": "17.1.2.3"},
    )
    for _ in range(2):
        client.get(path_of(links.click(ann.delivery.id, first, 0)), headers=READER)
    client.get(path_of(links.click(bob.delivery.id, first, 0)), headers=READER)
    client.get(
        path_of(links.click(bob.delivery.id, second, 1)),
        headers={"User-Agent": "Mozilla/5.0 (compatible; Mimecast URL Protect)"},
    )
    _flush(app, work)
    record_bounce(
        session,
        delivery_id=bob.delivery.id,
        email=None,
        kind=BounceKind.SOFT,
        source=BounceSource.SMTP,
        status="4.2.2",
        detail="mailbox full",
    )
    session.commit()

    figures = campaign_figures(session, ann.campaign.id)
    assert figures["bounces"] == {"hard": 0, "soft": 1}
    assert figures["complaints"] == 0
    assert figures["events"] == {
        "human_opens": 1,
        "machine_opens": 1,
        "human_clicks": 3,
        "machine_clicks": 1,
    }
    assert figures["machine_reasons"] == {"apple_mpp": 1, "scanner:mimecast": 1}
    assert figures["links"] == [{"index": 0, "url": first, "clicks": 3, "unique_clicks": 2}]


def test_erasure_takes_the_persons_tracking_events_and_later_hits_are_dropped(
    app, client, session, work, factory, links
):
    sent = factory.sent()
    client.get(path_of(links.open_pixel(sent.delivery.id)), headers=READER)
    _flush(app, work)
    record_bounce(
        session,
        delivery_id=sent.delivery.id,
        email=None,
        kind=BounceKind.SOFT,
        source=BounceSource.DSN,
        status="4.4.1",
        detail="timed out",
    )
    session.commit()
    assert session.scalar(select(func.count()).select_from(TrackingEvent)) == 1

    erasure.erase(session, "ann@example.com", "test:dpo")
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(TrackingEvent)) == 0
    assert session.get(Delivery, sent.delivery.id).subscriber_id is None
    # The bounce stays as pseudonymous evidence (an HMAC, no address).
    bounce = session.scalar(select(Bounce))
    assert bounce.email_hmac and bounce.delivery_id == sent.delivery.id

    # The old message is opened again after the erasure: nothing is recorded about anyone.
    client.get(path_of(links.open_pixel(sent.delivery.id)), headers=READER)
    _flush(app, work)
    assert session.scalar(select(func.count()).select_from(TrackingEvent)) == 0


def test_cron_flushes_tracking_every_five_seconds(app):
    from workers import cron

    timing = {j.func_name: (j.interval, j.queue_name) for j in cron.scheduler(app).get_jobs()}
    assert timing[tasks.FLUSH_TRACKING] == (5, "mailer")
