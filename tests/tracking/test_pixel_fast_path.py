"""The open pixel's fast path (`mailer.tracking.pixel`): the same answer as the Flask view,
the hit in Redis before the answer leaves, and everything odd still left to Flask."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flask import request_started
from sqlalchemy import func, select
from werkzeug.test import Client

from mailer import create_app
from mailer.extensions import jobs
from mailer.subscribers.models import Subscriber
from mailer.tracking import stream
from mailer.tracking.flush import flush_events
from mailer.tracking.models import TrackingEvent
from mailer.tracking.pixel import PixelFastPath
from tests.services import free_port
from tests.tracking.conftest import path_of, process_env

READER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
ROOT = Path(__file__).resolve().parents[2]


def _entries(app) -> list[dict[str, str]]:
    with app.app_context():
        raw = jobs.redis.xrange(stream.STREAM)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in raw]


def _flask_only(app) -> Client:
    """A client of the same app with the fast path taken off: the Flask view answers."""
    assert isinstance(app.wsgi_app, PixelFastPath)
    return Client(app.wsgi_app.inner)


def _dispatched_by_flask(app) -> list[str]:
    seen: list[str] = []
    request_started.connect(lambda sender, **_: seen.append("flask"), app, weak=False)
    return seen


def test_the_fast_path_answers_exactly_what_the_flask_view_answers(app, client, factory, links):
    sent = factory.sent()
    flask_seen = _dispatched_by_flask(app)
    client.head("/t/o/warm-up")  # the fast path learns the view's headers once, from Flask
    flask_seen.clear()
    view = _flask_only(app)
    good = path_of(links.open_pixel(sent.delivery.id))
    for method, path in (
        ("GET", good),
        ("HEAD", good),
        ("GET", "/t/o/garbage"),
        ("GET", "/t/o/" + "x" * 5000),
        ("GET", "/t/o/%C3%B8"),  # not ASCII
        ("GET", good + "?utm_source=x"),
    ):
        fast = client.open(path, method=method, headers={"User-Agent": READER})
        assert flask_seen == [], f"the fast path must answer {method} {path} without Flask"
        slow = view.open(path, method=method, headers={"User-Agent": READER})
        assert flask_seen == ["flask"]
        flask_seen.clear()
        assert fast.status == slow.status == "200 OK", (method, path)
        assert fast.headers.to_wsgi_list() == slow.headers.to_wsgi_list(), (method, path)
        assert fast.data == slow.data
    # The fast path and the view both recorded the two genuine GETs, and nothing else.
    entries = _entries(app)
    assert len(entries) == 4
    assert entries[0] == entries[1] and entries[2] == entries[3]
    assert entries[0]["d"] == str(sent.delivery.id) and entries[0]["k"] == "open"


def test_the_answer_carries_the_gif_the_no_cache_and_the_security_headers(client):
    response = client.get("/t/o/anything")
    assert response.status_code == 200 and len(response.data) == 43
    headers = response.headers
    assert headers["Content-Type"] == "image/gif" and headers["Content-Length"] == "43"
    assert "no-store" in headers["Cache-Control"] and headers["Pragma"] == "no-cache"
    assert headers["Expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "Set-Cookie" not in headers


def test_the_hit_is_in_redis_before_the_answer_is_handed_to_the_server(app, factory, links):
    """What makes a kill -9 after the answer harmless: the entry exists by the time the
    server gets the status line, so any pixel a client received was recorded."""
    sent = factory.sent()
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path_of(links.open_pixel(sent.delivery.id)),
        "REMOTE_ADDR": "203.0.113.5",
        "HTTP_USER_AGENT": READER,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    seen_at_start: list[int] = []

    def start_response(status, headers, exc_info=None):
        seen_at_start.append(len(_entries(app)))

    body = b"".join(app(environ, start_response))
    assert len(body) == 43 and seen_at_start == [1]


def test_odd_requests_are_left_to_flask(app, client):
    flask_seen = _dispatched_by_flask(app)
    assert client.post("/t/o/abc").status_code == 405
    assert "GET" in client.post("/t/o/abc").headers["Allow"]
    assert client.get("/t/o/abc/").status_code == 404
    assert client.get("/t/o/").status_code == 404
    assert client.get("/t//o/abc").status_code == 308
    assert client.options("/t/o/abc").status_code == 200
    assert len(flask_seen) == 6
    assert _entries(app) == []


def test_behind_a_proxy_the_client_address_comes_from_x_forwarded_for(
    make_settings, make_app, factory, links
):
    """Apple's privacy proxy is told by its address: the fast path must see the same client
    address as the Flask view, i.e. the one ProxyFix takes from X-Forwarded-For."""
    sent = factory.sent()
    path = path_of(links.open_pixel(sent.delivery.id))
    apple = {"User-Agent": "Mozilla/5.0", "X-Forwarded-For": "17.58.63.1"}
    proxied = make_app(make_settings(MAILER_PROXY_COUNT="1"))
    direct = make_app(make_settings())  # no proxy trusted: the header is the client's word
    for app in (proxied, direct):
        app.test_client().get(path, headers=apple, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert [e["r"] for e in _entries(direct)] == ["apple_mpp", "bare_user_agent"]


def test_with_redis_down_the_pixel_is_still_served(make_settings, factory, links, tmp_path):
    sent = factory.sent()
    app = create_app(make_settings(MAILER_REDIS_URL=f"unix://{tmp_path}/no-redis.sock"))
    response = app.test_client().get(path_of(links.open_pixel(sent.delivery.id)))
    assert response.status_code == 200 and len(response.data) == 43
    app.extensions["mailer.db"].kw["bind"].dispose()


def test_hits_answered_by_gunicorn_survive_its_kill_9(app, settings, session, factory, links):
    """The production server, killed with SIGKILL right after answering: every pixel it
    answered reaches the profile at the next flush."""
    deliveries = [factory.sent(email=f"reader{n}@example.com").delivery for n in range(5)]
    port = free_port()
    server = subprocess.Popen(
        [
            GUNICORN,
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=process_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        answered = 0
        deadline = time.monotonic() + 60
        for n in range(60):
            delivery = deliveries[n % len(deliveries)]
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    conn.request(
                        "GET",
                        path_of(links.open_pixel(delivery.id)),
                        headers={"User-Agent": READER},
                    )
                    response = conn.getresponse()
                    break
                except (ConnectionRefusedError, http.client.RemoteDisconnected):
                    assert time.monotonic() < deadline, "gunicorn did not answer"
                    time.sleep(0.1)
            assert response.status == 200 and len(response.read()) == 43
            conn.close()
            answered += 1
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    with app.app_context():
        flush_events(session, jobs.redis, machine_open_seconds=settings.machine_open_seconds)
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(TrackingEvent)) == answered
    assert session.scalar(select(func.sum(Subscriber.open_count))) == answered
