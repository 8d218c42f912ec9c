"""Admitting a sign-up in one Redis round trip: the rate limits, then the intake.

The sign-up's fast path (`mailer.public.signup_path`) must do in Redis what the Flask view
does in six round trips: check that its cached form is current (the form cache's generation
counter), take an entry in each rate-limit window (per IP, per address), append the sign-up to
the intake stream and kick a drain (`mailer.subscribers.intake`). One Lua script does all of
it atomically, and does nothing at all unless everything passes: a stale form or a full window
leaves Redis as it was, so the caller can hand the request to the Flask view, which then
decides (and answers 429, or reloads the form) on its own.

The windows are Flask-Limiter's moving windows, in its storage format (a Redis list of hit
times under the key `limits` builds), so the fast path and the view draw on one budget.
Unlike Flask-Limiter, which takes an entry in each window in turn until one is full, the
script takes entries only when every window has room: a refused request costs nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from mailer.subscribers import form_cache, intake

# KEYS: generation, stream, kick, window keys.
# ARGV: generation, now, kick ms, window count n, header window (1-based), n x (amount,
#       seconds), then the entry's field/value pairs.
SCRIPT = """
local generation = redis.call('get', KEYS[1]) or '0'
if generation ~= ARGV[1] then
  return {'stale'}
end
local now = tonumber(ARGV[2])
local n = tonumber(ARGV[4])
for i = 1, n do
  local amount = tonumber(ARGV[4 + 2 * i])
  local seconds = tonumber(ARGV[5 + 2 * i])
  if amount < 1 then
    return {'limited', i}
  end
  local entry = redis.call('lindex', KEYS[3 + i], amount - 1)
  if entry and tonumber(entry) >= now - seconds then
    return {'limited', i}
  end
end
for i = 1, n do
  local key = KEYS[3 + i]
  redis.call('lpush', key, ARGV[2])
  redis.call('ltrim', key, 0, tonumber(ARGV[4 + 2 * i]) - 1)
  redis.call('expire', key, tonumber(ARGV[5 + 2 * i]))
end
redis.call('xadd', KEYS[2], '*', unpack(ARGV, 6 + 2 * n))
local kicked = 0
if redis.call('set', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then
  kicked = 1
end
-- The header window's oldest hit still inside it and its count (as limits' moving_window.lua).
local h = tonumber(ARGV[5])
if h < 1 then
  return {'accepted', kicked}
end
local key = KEYS[3 + h]
local target = now - tonumber(ARGV[5 + 2 * h])
local low, high, found = 0, tonumber(ARGV[4 + 2 * h]) - 1, nil
while low <= high do
  local mid = math.floor((low + high) / 2)
  local value = tonumber(redis.call('lindex', key, mid))
  if value and value >= target then
    found = mid
    low = mid + 1
  else
    high = mid - 1
  end
end
local oldest = ARGV[2]
local count = 0
if found then
  oldest = redis.call('lindex', key, found)
  count = found + 1
end
return {'accepted', kicked, oldest, count}
"""


@dataclass(frozen=True)
class Window:
    """One moving rate-limit window: its storage key, how many hits, over how long."""

    key: str
    amount: int
    seconds: int


@dataclass(frozen=True)
class Admission:
    outcome: str  # accepted | stale (the cached form is out of date) | limited
    kicked: bool = False  # this sign-up opened a kick window: enqueue the drain
    # The header window after this hit (accepted only): hits left, and when it is reset.
    remaining: int = 0
    reset_at: float = 0.0


class Admitter:
    """The script, registered once per connection (EVALSHA; EVAL again after a flush)."""

    def __init__(self, connection: redis.Redis) -> None:
        self.script = connection.register_script(SCRIPT)

    def admit(
        self,
        accepted: intake.Accepted,
        generation: bytes,
        windows: list[Window],
        header: int | None,
    ) -> Admission:
        """Admit one sign-up, or change nothing. `header`: the index of the window whose state
        the answer reports (Flask-Limiter's X-RateLimit headers), or None.

        Raises RedisError: then it is unknown whether the script ran (the caller hands the
        request to the view, as when Redis is down)."""
        now = time.time()
        fields = intake.encode(accepted)
        args: list[str | int | float | bytes] = [
            generation,
            repr(now),
            intake.KICK_MS,
            len(windows),
            0 if header is None else header + 1,
        ]
        for window in windows:
            args += [window.amount, window.seconds]
        for name, value in fields.items():
            args += [name, value]
        keys = [form_cache.GENERATION, intake.STREAM, intake.KICK, *(w.key for w in windows)]
        reply = self.script(keys=keys, args=args)
        outcome = reply[0].decode()
        if outcome != "accepted":
            return Admission(outcome)
        kicked = bool(reply[1])
        if header is None:
            return Admission(outcome, kicked)
        window = windows[header]
        oldest, count = float(reply[2]), int(reply[3])
        return Admission(outcome, kicked, window.amount - count, oldest + window.seconds)
