"""The hot path: a pixel hit or a click becomes one Redis stream entry, and nothing else.

No database access here: the token says which delivery (and, for a click, where to), the
client rules (`classify.by_client`) look at the IP and user agent, and only the verdict and
a clipped user agent go into the stream. The IP is never stored anywhere.

A hit that cannot be recorded (forged or expired token, Redis down) is simply not recorded;
the visitor still gets the pixel or the redirect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from redis.exceptions import RedisError

from mailer.tokens import Purpose, TokenError, Tokens
from mailer.tracking import classify, stream
from mailer.tracking.models import USER_AGENT_MAX, EventKind

log = logging.getLogger(__name__)

SCHEMES = ("http", "https")


@dataclass(frozen=True)
class ClickTarget:
    delivery_id: int
    url: str
    link_index: int | None
    # False for an expired (but genuinely signed) token: redirect, record nothing.
    record: bool


def safe_url(value: object) -> str | None:
    """`value` if it is an absolute http(s) URL fit for a Location header, else None."""
    if not isinstance(value, str) or not value or len(value) > 8192:
        return None
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value) or "\\" in value:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        return None
    return value


def click_target(tokens: Tokens, token: str) -> ClickTarget | None:
    """Where a click token leads, or None if it is not ours (or not a safe http(s) URL).

    An expired token still leads where it always did: the signature proves we wrote the URL,
    and an old newsletter's links should keep working. Only the recording stops."""
    try:
        payload, record = tokens.loads(Purpose.CLICK, token), True
    except TokenError as exc:
        if not exc.expired:
            return None
        payload, record = exc.payload, False
    if not isinstance(payload, dict):
        return None
    delivery_id, url, index = payload.get("d"), safe_url(payload.get("u")), payload.get("i")
    if not _is_id(delivery_id) or url is None:
        return None
    return ClickTarget(delivery_id, url, index if _is_id(index) else None, record)


def record_open(
    connection: redis.Redis, tokens: Tokens, token: str, ip: str | None, user_agent: str | None
) -> bool:
    """Push an open for a valid, unexpired pixel token; True if it was pushed."""
    try:
        payload = tokens.loads(Purpose.OPEN, token)
    except TokenError:
        return False
    delivery_id = payload.get("d") if isinstance(payload, dict) else None
    if not _is_id(delivery_id):
        return False
    return _push(connection, EventKind.OPEN, delivery_id, ip, user_agent)


def record_click(
    connection: redis.Redis, target: ClickTarget, ip: str | None, user_agent: str | None
) -> bool:
    """Push a click (see `click_target`); True if it was pushed."""
    if not target.record:
        return False
    extra = {"u": target.url}
    if target.link_index is not None:
        extra["i"] = str(target.link_index)
    return _push(connection, EventKind.CLICK, target.delivery_id, ip, user_agent, extra)


def _push(
    connection: redis.Redis,
    kind: EventKind,
    delivery_id: int,
    ip: str | None,
    user_agent: str | None,
    extra: dict[str, str] | None = None,
) -> bool:
    fields = {
        "k": kind.value,
        "d": str(delivery_id),
        "r": classify.by_client(ip, user_agent) or "",
        "a": (user_agent or "")[:USER_AGENT_MAX],
        **(extra or {}),
    }
    try:
        stream.push(connection, fields)
    except RedisError as exc:
        log.warning("tracking hit not recorded (Redis unavailable: %s)", type(exc).__name__)
        return False
    return True


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
