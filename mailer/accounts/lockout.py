"""Login lockout per account: after `attempts` failed sign-ins for one address within
`window` seconds, that address is locked for `seconds`, whatever password is tried.

Kept in Redis, keyed by an HMAC of the normalised address, rather than in a users column:
- addresses that have no account are counted and locked exactly like real ones, so neither
  the answer nor its timing tells whether an account exists (a column exists only for users);
- a guessing attacker cannot make us write to the users table on every attempt;
- expiry is Redis's TTL, with nothing to clean up; and Redis never holds the address itself.
The login view answers a locked account exactly as a wrong password (same message, status
and work: the password is still checked), so a lock cannot be told from a typo either.

If Redis is unreachable the lockout is skipped (logged): staff can still sign in, and the
per-IP rate limit on /login, which falls back to memory, still applies.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

import redis

from mailer.config import Settings
from mailer.subscribers.schemas import normalise_email

log = logging.getLogger(__name__)

_PREFIX = "mailer:lockout"


@dataclass(frozen=True)
class Policy:
    attempts: int  # failures that lock; 0: no lockout
    window: int  # seconds in which they count
    seconds: int  # how long the lock lasts

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            settings.login_lockout_attempts,
            settings.login_lockout_window,
            settings.login_lockout_seconds,
        )


class Lockout:
    """Failed-attempt counting for sign-ins. Every method is safe to call any number of
    times; each touches Redis only."""

    def __init__(self, connection: redis.Redis, secret_key: str, policy: Policy) -> None:
        self.redis = connection
        self.policy = policy
        # Its own key, derived from the secret: these digests match nothing else we store.
        self._key = hmac.new(secret_key.encode(), b"mailer.lockout.v1", hashlib.sha256).digest()

    @classmethod
    def for_settings(cls, connection: redis.Redis, settings: Settings) -> Lockout:
        return cls(connection, settings.secret_key, Policy.from_settings(settings))

    def _digest(self, email: str) -> str:
        try:
            address = normalise_email(email)
        except ValueError:
            address = email.strip().lower()
        return hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()

    def _keys(self, email: str) -> tuple[str, str]:
        digest = self._digest(email)
        return f"{_PREFIX}:fail:{digest}", f"{_PREFIX}:lock:{digest}"

    def locked(self, email: str) -> bool:
        if self.policy.attempts <= 0:
            return False
        try:
            return bool(self.redis.exists(self._keys(email)[1]))
        except redis.RedisError:
            log.warning("login lockout unavailable (Redis); not checked")
            return False

    def failed(self, email: str) -> bool:
        """Count one failed attempt; True when this one locked the address."""
        if self.policy.attempts <= 0:
            return False
        fail, lock = self._keys(email)
        try:
            pipe = self.redis.pipeline()
            pipe.set(fail, 0, ex=self.policy.window, nx=True)  # the window opens at the first
            pipe.incr(fail)
            count = pipe.execute()[1]
            if count < self.policy.attempts:
                return False
            pipe = self.redis.pipeline()
            pipe.set(lock, 1, ex=self.policy.seconds)
            pipe.delete(fail)
            pipe.execute()
            log.warning("login locked for %s s after %s failures", self.policy.seconds, count)
            return True
        except redis.RedisError:
            log.warning("login lockout unavailable (Redis); failure not counted")
            return False

    def succeeded(self, email: str) -> None:
        """A successful sign-in (never while locked) starts the count afresh."""
        if self.policy.attempts <= 0:
            return
        try:
            self.redis.delete(self._keys(email)[0])
        except redis.RedisError:
            log.warning("login lockout unavailable (Redis)")
