"""Admitting a sign-up in one round trip (`mailer.subscribers.admission`): Flask-Limiter's own
moving windows, all or nothing, on a real Redis."""

from __future__ import annotations

from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from mailer.consent.ledger import Visit
from mailer.database import utcnow
from mailer.extensions import jobs
from mailer.subscribers import form_cache, intake
from mailer.subscribers.admission import Admitter, Window

IP_LIMIT = RateLimitItemPerMinute(2)
ADDRESS_LIMIT = RateLimitItemPerMinute(3)
IP_ID = ("127.0.0.1", "public.subscribe:signup-ip")
ADDRESS_ID = ("address:abc", "public.subscribe:address")


def _accepted(email: str) -> intake.Accepted:
    return intake.Accepted(
        form_id=1,
        form_version_id=1,
        email=email,
        name="",
        topics=("news",),
        at=utcnow(),
        visit=Visit("127.0.0.1", "Test/1.0", "en"),
        channel="json",
        origin="https://shop.example",
    )


def _setup(app):
    """(admitter, windows, Flask-Limiter's limiter on the same Redis, the connection)."""
    storage = RedisStorage(app.config["RATELIMIT_STORAGE_URI"])
    windows = [
        Window(f"{storage.key_prefix}:{item.key_for(*ids)}", item.amount, item.get_expiry())
        for item, ids in ((IP_LIMIT, IP_ID), (ADDRESS_LIMIT, ADDRESS_ID))
    ]
    connection = app.extensions["mailer.redis"]
    return Admitter(connection), windows, MovingWindowRateLimiter(storage), connection


def _state(connection, windows) -> tuple:
    return (
        connection.xlen(intake.STREAM),
        *(tuple(connection.lrange(w.key, 0, -1)) for w in windows),
    )


def test_windows_are_shared_with_flask_limiter_and_a_refusal_takes_nothing(app):
    admitter, windows, limiter, connection = _setup(app)
    with app.app_context():
        generation = jobs.redis.get(form_cache.GENERATION) or b"0"

    first = admitter.admit(_accepted("a@example.com"), generation, windows, header=0)
    assert first.outcome == "accepted" and first.kicked
    assert first.remaining == 1  # the IP window: 2 a minute, one taken
    # Flask-Limiter sees the script's hits, and its own hit fills the IP window.
    assert limiter.get_window_stats(IP_LIMIT, *IP_ID).remaining == 1
    assert limiter.hit(IP_LIMIT, *IP_ID)
    before = _state(connection, windows)

    full = admitter.admit(_accepted("b@example.com"), generation, windows, header=0)
    assert full.outcome == "limited"
    # Nothing changed: no entry, and no hit in the address window, which had room.
    assert _state(connection, windows) == before
    assert limiter.get_window_stats(ADDRESS_LIMIT, *ADDRESS_ID).remaining == 2

    stale = admitter.admit(_accepted("c@example.com"), generation + b"1", windows, header=0)
    assert stale.outcome == "stale"
    assert _state(connection, windows) == before

    entries = connection.xrange(intake.STREAM)
    assert [
        intake.decode(i.decode(), {k.decode(): v.decode() for k, v in f.items()}).email
        for i, f in entries
    ] == ["a@example.com"]


def test_the_drain_is_kicked_once_per_window(app):
    admitter, windows, _limiter, connection = _setup(app)
    generation = connection.get(form_cache.GENERATION) or b"0"
    big = [Window(w.key, 100, w.seconds) for w in windows]
    kicks = [
        admitter.admit(_accepted(f"{n}@example.com"), generation, big, header=None).kicked
        for n in range(3)
    ]
    assert kicks == [True, False, False]
    connection.delete(intake.KICK)  # the window is over
    assert admitter.admit(_accepted("later@example.com"), generation, big, None).kicked
    assert connection.xlen(intake.STREAM) == 4
