"""One sending rate for all workers together, counted in Redis with the `limits` library.

Fixed windows (one INCR per acquisition) keep the cost per message to a Redis round trip; they
are aligned to wall-clock seconds and hours, so "no more than N in any calendar second" holds
exactly, across every worker process on every machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from limits import RateLimitItemPerHour, RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from mailer.config import Settings

_KEY = "mailer-campaign-send"


class Pacer:
    """`acquire()` waits (briefly) until one more message may go out; a no-op without limits."""

    def __init__(self, settings: Settings, sleep: Callable[[float], None] = time.sleep) -> None:
        self._items = []
        if settings.send_rate_per_second > 0:
            self._items.append(RateLimitItemPerSecond(settings.send_rate_per_second))
        if settings.send_rate_per_hour > 0:
            self._items.append(RateLimitItemPerHour(settings.send_rate_per_hour))
        self._limiter = (
            FixedWindowRateLimiter(RedisStorage(settings.limiter_storage_uri))
            if self._items
            else None
        )
        self._sleep = sleep

    @property
    def limited(self) -> bool:
        return self._limiter is not None

    def acquire(
        self, still_wanted: Callable[[], bool] = lambda: True, max_wait: float = 5.0
    ) -> bool | float:
        """Wait for a slot in every window, at most `max_wait` seconds.

        True: go. False: `still_wanted()` turned False while waiting (paused, cancelled).
        A number: the windows stay closed that many seconds more, longer than `max_wait`
        (an hourly cap): the caller should hand its work back and come back then, not hold a
        worker asleep. No slot is taken unless True."""
        if self._limiter is None:
            return True
        waited = 0.0
        while True:
            # Test every window first, so a full hour does not burn the second's slots.
            blocked = [i for i in self._items if not self._limiter.test(i, _KEY)]
            if not blocked and all(self._limiter.hit(i, _KEY) for i in self._items):
                return True
            if not still_wanted():
                return False
            reset = max(
                self._limiter.get_window_stats(i, _KEY).reset_time for i in blocked or self._items
            )
            remaining = max(reset - time.time(), 0.01)
            if waited + remaining > max_wait:
                return remaining
            pause = min(remaining, 1.0)
            self._sleep(pause)
            waited += pause

    def window_open(self) -> bool:
        """Whether a message could go out now (for the sweep: a closed hour is not a stall)."""
        if self._limiter is None:
            return True
        return all(self._limiter.test(i, _KEY) for i in self._items)
