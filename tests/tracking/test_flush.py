"""From hits to profiles: the flush job, human and machine apart, opt-outs, and no hit lost or
counted twice when a worker or the web process dies in between."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import redis
from redis.exceptions import NoPermissionError
from rq import SimpleWorker
from sqlalchemy import func, select, update

from mailer import create_app, tasks
from mailer.campaigns.models import Delivery
from mailer.extensions import jobs
from mailer.subscribers.models import Subscriber
from mailer.tracking import stream
from mailer.tracking.flush import flush_events
from mailer.tracking.models import EventKind, TrackingEvent
from tests.tracking.conftest import path_of, process_env

READER = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
HUMAN = {"User-Agent": READER}


def _flush_job(app, work) -> None:
    with app.app_context():
        tasks.enqueue(tasks.FLUSH_TRACKING)
    work()


def _profile(session, subscriber_id: int) -> Subscriber:
    session.expire_all()
    return session.get(Subscriber, subscriber_id)


def _events(session) -> list[TrackingEvent]:
    session.expire_all()
    return list(session.scalars(select(TrackingEvent).order_by(TrackingEvent.id)))


def _hit(client, url: str, headers=None, ip="203.0.113.9") -> None:
    response = client.get(path_of(url), headers=headers or HUMAN, environ_base={"REMOTE_ADDR": ip})
    assert response.status_code in (200, 302)


def test_opens_and_clicks_reach_the_profile_and_the_delivery(
    app, client, session, work, factory, links
):
    sent = factory.sent()
    pixel = links.open_pixel(sent.delivery.id)
    _hit(client, pixel)
    _hit(client, pixel)
    _hit(client, links.click(sent.delivery.id, "https://example.org/a", 0))
    _flush_job(app, work)

    person = _profile(session, sent.subscriber.id)
    assert (person.open_count, person.machine_open_count, person.click_count) == (2, 0, 1)
    events = _events(session)
    assert [e.kind for e in events] == [EventKind.OPEN, EventKind.OPEN, EventKind.CLICK]
    assert not any(e.machine for e in events)
    assert events[2].url == "https://example.org/a" and events[2].link_index == 0
    assert {e.subscriber_id for e in events} == {sent.subscriber.id}
    assert {e.campaign_id for e in events} == {sent.campaign.id}
    delivery = session.get(Delivery, sent.delivery.id)
    assert delivery.opened_at == events[0].occurred_at  # the first human open
    assert person.last_open_at == events[1].occurred_at  # the latest
    assert delivery.clicked_at == person.last_click_at == events[2].occurred_at
    assert delivery.machine_opened_at is None
    with app.app_context():
        assert jobs.redis.xlen(stream.STREAM) == 0  # flushed entries leave Redis

    # Running the job again changes nothing.
    _flush_job(app, work)
    assert _profile(session, sent.subscriber.id).open_count == 2
    assert len(_events(session)) == 3


def test_machine_opens_are_stored_apart_and_kept_out_of_human_figures(
    app, client, session, work, factory, links
):
    sent = factory.sent()
    just_sent = factory.sent(email="bob@example.com", sent_ago=timedelta(seconds=0))
    pixel = links.open_pixel(sent.delivery.id)
    _hit(client, pixel, {"User-Agent": "Mozilla/5.0"}, ip="17.58.63.1")  # Apple MPP
    _hit(client, pixel, {"User-Agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"})
    scanner = {"User-Agent": "Microsoft Office Existence Discovery"}
    _hit(client, links.click(sent.delivery.id, "https://example.org/", 0), scanner)
    # A person's browser, but within MAILER_MACHINE_OPEN_SECONDS of sending: a scanner.
    _hit(client, links.open_pixel(just_sent.delivery.id))
    _flush_job(app, work)

    events = _events(session)
    assert [(e.kind, e.machine, e.reason) for e in events] == [
        (EventKind.OPEN, True, "apple_mpp"),
        (EventKind.OPEN, True, "google_image_proxy"),
        (EventKind.CLICK, True, "scanner:microsoft"),
        (EventKind.OPEN, True, "soon_after_delivery"),
    ]
    person = _profile(session, sent.subscriber.id)
    assert (person.open_count, person.machine_open_count, person.click_count) == (0, 2, 0)
    assert person.last_open_at is None and person.last_click_at is None
    delivery = session.get(Delivery, sent.delivery.id)
    assert delivery.opened_at is None and delivery.clicked_at is None
    assert delivery.machine_opened_at == events[0].occurred_at
    assert _profile(session, just_sent.subscriber.id).machine_open_count == 1

    # A real open later still counts as the first human open.
    _hit(client, pixel)
    _flush_job(app, work)
    delivery = session.get(Delivery, sent.delivery.id)
    assert delivery.opened_at is not None and delivery.opened_at > delivery.machine_opened_at
    assert _profile(session, sent.subscriber.id).open_count == 1


def test_hits_of_a_subscriber_who_switched_tracking_off_are_not_recorded(
    app, client, session, work, factory, links
):
    sent = factory.sent()
    other = factory.sent(email="bob@example.com")
    # Tracked when sent; the person switched tracking off afterwards.
    session.execute(
        update(Subscriber).where(Subscriber.id == sent.subscriber.id).values(tracking_enabled=False)
    )
    session.commit()
    _hit(client, links.open_pixel(sent.delivery.id))
    _hit(client, links.click(sent.delivery.id, "https://example.org/", 0))
    _hit(client, links.open_pixel(other.delivery.id))
    _flush_job(app, work)

    person = _profile(session, sent.subscriber.id)
    assert (person.open_count, person.click_count, person.last_open_at) == (0, 0, None)
    delivery = session.get(Delivery, sent.delivery.id)
    assert delivery.opened_at is None and delivery.clicked_at is None
    assert [e.subscriber_id for e in _events(session)] == [other.subscriber.id]
    with app.app_context():
        assert jobs.redis.xlen(stream.STREAM) == 0 and stream.pending_count(jobs.redis) == 0


def test_a_campaign_that_stopped_tracking_opens_records_only_clicks(
    app, client, session, work, factory, links
):
    sent = factory.sent(track_opens=False)
    _hit(client, links.open_pixel(sent.delivery.id))
    _hit(client, links.click(sent.delivery.id, "https://example.org/", 0))
    _flush_job(app, work)
    assert [e.kind for e in _events(session)] == [EventKind.CLICK]
    person = _profile(session, sent.subscriber.id)
    assert (person.open_count, person.click_count) == (0, 1)


def test_a_worker_killed_after_reading_loses_nothing(
    app, client, session, factory, links, settings
):
    """A real RQ worker process takes the flush job, reads the hits from the stream and is
    killed (SIGKILL) before it can commit or acknowledge; a later flush recovers every hit."""
    sent = factory.sent()
    pixel = links.open_pixel(sent.delivery.id)
    for _ in range(3):
        _hit(client, pixel)
    _hit(client, links.click(sent.delivery.id, "https://example.org/", 0))

    # Hold the subscriber row (on SQLite: the write lock), so the worker stops mid-flush.
    blocker = app.extensions["mailer.db"]()
    blocker.execute(
        update(Subscriber).where(Subscriber.id == sent.subscriber.id).values(id=Subscriber.id)
    )
    with app.app_context():
        tasks.enqueue(tasks.FLUSH_TRACKING)
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        env=process_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with app.app_context():
            _wait_for(lambda: stream.pending_count(jobs.redis) == 4, worker)
    finally:
        worker.kill()
        worker.wait(timeout=20)
        blocker.rollback()
        blocker.close()

    assert _events(session) == []
    assert _profile(session, sent.subscriber.id).open_count == 0
    with app.app_context():
        connection = jobs.redis
        assert stream.pending_count(connection) == 4
        # A flush right away leaves them alone: their reader might still be working.
        report = flush_events(session, connection, machine_open_seconds=10)
        assert report.recorded == 0 and stream.pending_count(connection) == 4
        # Once they have been idle long enough, the next flush takes them over.
        time.sleep(0.2)
        report = flush_events(session, connection, machine_open_seconds=10, reclaim_idle_ms=100)
        assert (report.reclaimed, report.recorded) == (4, 4)
        assert stream.pending_count(connection) == 0 and connection.xlen(stream.STREAM) == 0

    person = _profile(session, sent.subscriber.id)
    assert (person.open_count, person.click_count) == (3, 1)
    assert len(_events(session)) == 4


WORKER = """
from rq import SimpleWorker
from mailer import config, create_app
from mailer.extensions import jobs
app = create_app(config.load())
with app.app_context():
    SimpleWorker([jobs.queue], connection=jobs.redis).work(burst=True, with_scheduler=False)
"""


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the worker ended before reading the stream"
        assert time.monotonic() < deadline, "the worker never read the stream"
        time.sleep(0.05)


def test_rows_committed_by_a_reader_that_could_not_acknowledge_are_not_counted_twice(
    app, client, session, factory, links, redis_server
):
    """The reader commits its rows and then fails to acknowledge (here Redis refuses XACK to
    it); the entries stay pending, and the flush that takes them over writes nothing twice."""
    sent = factory.sent()
    for _ in range(2):
        _hit(client, links.open_pixel(sent.delivery.id))
    with app.app_context():
        admin = jobs.redis
        admin.execute_command("ACL", "SETUSER", "noack", "on", "nopass", "~*", "&*", "+@all")
        admin.execute_command("ACL", "SETUSER", "noack", "-xack", "-xdel")
        try:
            crippled = redis.Redis(
                unix_socket_path=str(redis_server.socket), username="noack", password="x"
            )
            with pytest.raises(NoPermissionError):
                flush_events(session, crippled, machine_open_seconds=10)
            crippled.close()
            assert _profile(session, sent.subscriber.id).open_count == 2  # committed ...
            assert stream.pending_count(admin) == 2  # ... but not acknowledged

            report = flush_events(session, admin, machine_open_seconds=10, reclaim_idle_ms=0)
        finally:
            admin.execute_command("ACL", "DELUSER", "noack")
    assert (report.reclaimed, report.recorded, report.duplicates) == (2, 0, 2)
    assert _profile(session, sent.subscriber.id).open_count == 2
    assert len(_events(session)) == 2
    with app.app_context():
        assert stream.pending_count(jobs.redis) == 0


def test_a_consumer_that_stops_after_reading_is_taken_over(app, client, session, factory, links):
    sent = factory.sent()
    _hit(client, links.open_pixel(sent.delivery.id))
    with app.app_context():
        connection = jobs.redis
        stream.ensure_group(connection)
        assert len(stream.read_new(connection, "gone-away", 100)) == 1  # ... and nothing more
        assert flush_events(session, connection, machine_open_seconds=10).recorded == 0
        report = flush_events(session, connection, machine_open_seconds=10, reclaim_idle_ms=0)
        assert report.recorded == 1
        names = [c["name"] for c in connection.xinfo_consumers(stream.STREAM, stream.GROUP)]
        assert b"gone-away" in names  # emptied, kept until it has been idle for an hour
    assert _profile(session, sent.subscriber.id).open_count == 1


def test_hits_taken_by_one_app_instance_are_flushed_by_a_worker_of_another(
    app, client, session, factory, links, settings
):
    """The web process restarts between the hit and the flush: nothing lived in its memory."""
    sent = factory.sent()
    _hit(client, links.open_pixel(sent.delivery.id))
    _hit(client, links.click(sent.delivery.id, "https://example.org/", 0))
    del client

    restarted = create_app(settings)  # a new process would build exactly this
    try:
        with restarted.app_context():
            tasks.configure(jobs.queue)
            tasks.enqueue(tasks.FLUSH_TRACKING)
            SimpleWorker([jobs.queue], connection=jobs.redis).work(burst=True, with_scheduler=False)
            assert jobs.queue.failed_job_registry.count == 0
    finally:
        restarted.extensions["mailer.db"].kw["bind"].dispose()
        tasks.configure(app.extensions["mailer.queue"])
    person = _profile(session, sent.subscriber.id)
    assert (person.open_count, person.click_count) == (1, 1)


def test_flushes_running_at_once_and_stealing_each_others_entries_count_every_hit_once(
    app, client, session, factory, links
):
    """Cron enqueues a flush every few seconds, so runs overlap. Here they even take over each
    other's pending entries at once (reclaim after 0 ms), the worst case: each hit still
    counts once."""
    sent = factory.sent()
    for _ in range(60):
        _hit(client, links.open_pixel(sent.delivery.id))
    with app.app_context():
        connection = jobs.redis
    stream.ensure_group(connection)
    errors: list[BaseException] = []

    def run() -> None:
        own = app.extensions["mailer.db"]()
        try:
            flush_events(own, connection, machine_open_seconds=10, batch_size=5, reclaim_idle_ms=0)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    flush_events(session, connection, machine_open_seconds=10, reclaim_idle_ms=0)
    assert _profile(session, sent.subscriber.id).open_count == 60
    assert session.scalar(select(func.count()).select_from(TrackingEvent)) == 60
    assert stream.pending_count(connection) == 0
