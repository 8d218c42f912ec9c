"""The Redis stream between a hit and its row: nothing is lost when a process dies.

A hit is one `XADD`. The flush job reads through a consumer group (`XREADGROUP`): an entry a
consumer has read stays in the group's pending list until that consumer acknowledges it
(`XACK`), which it does only after the rows are committed. If the consumer dies first, the
next flush takes the entry over (`XAUTOCLAIM`, once it has been idle long enough that its
reader is surely gone) and writes it; rows are keyed by the entry id, so an entry written
just before its reader died is not written twice.

Acknowledged entries are deleted, so the stream holds only what is not yet in the database.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable

import redis
from redis.exceptions import ResponseError

STREAM = "mailer:tracking:events"
GROUP = "flush"
# Guard for Redis memory if no flush runs for a long time (days of hits at any real volume):
# past this, the oldest entries are trimmed.
MAX_ENTRIES = 5_000_000
# A consumer that has not touched the group for this long is gone (a flush run lasts seconds).
FORGET_CONSUMERS_AFTER_MS = 3600 * 1000

Entry = tuple[str, dict[str, str]]


def push(connection: redis.Redis, fields: dict[str, str]) -> str:
    """Append one hit; returns the entry id (`<milliseconds>-<sequence>`, Redis's clock)."""
    entry_id = connection.xadd(STREAM, fields, maxlen=MAX_ENTRIES, approximate=True)
    return _text(entry_id)


def consumer_name() -> str:
    """Unique per flush run, so a run's unacknowledged entries are told apart from others'."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def ensure_group(connection: redis.Redis) -> None:
    """Create the stream and group once; from id 0, so hits made before it are read too."""
    try:
        connection.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read_new(connection: redis.Redis, consumer: str, count: int) -> list[Entry]:
    """Entries no consumer has read yet; they are pending for `consumer` from now on."""
    reply = connection.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count)
    if not reply:
        return []
    return _entries(reply[0][1])


def claim_stale(
    connection: redis.Redis, consumer: str, min_idle_ms: int, count: int, start: str = "0-0"
) -> tuple[str, list[Entry], list[str]]:
    """Take over entries pending on other consumers for at least `min_idle_ms`.

    Returns (next start id, "0-0" when the scan is done; the claimed entries; ids of
    pending entries that no longer exist in the stream, which only need acknowledging).
    """
    reply = connection.xautoclaim(STREAM, GROUP, consumer, min_idle_ms, start, count=count)
    next_start = _text(reply[0])
    gone = [_text(i) for i in (reply[2] if len(reply) > 2 else [])]
    entries = []
    for entry_id, fields in reply[1]:
        if fields is None:  # Redis 6.2 reports deleted entries this way
            gone.append(_text(entry_id))
        else:
            entries.append((_text(entry_id), _fields(fields)))
    return next_start, entries, gone


def acknowledge(connection: redis.Redis, ids: Iterable[str]) -> None:
    """Done with these entries: out of the pending list and out of the stream, atomically."""
    ids = list(ids)
    if not ids:
        return
    pipe = connection.pipeline(transaction=True)
    pipe.xack(STREAM, GROUP, *ids)
    pipe.xdel(STREAM, *ids)
    pipe.execute()


def pending_count(connection: redis.Redis) -> int:
    """Entries read by some consumer and not yet acknowledged."""
    try:
        return int(connection.xpending(STREAM, GROUP)["pending"])
    except ResponseError:  # no stream or no group yet
        return 0


def retire(connection: redis.Redis, consumer: str) -> None:
    """Remove `consumer` if it holds nothing, and consumers idle for an hour that hold nothing.

    Only empty consumers are removed: deleting a consumer drops its pending entries.
    """
    for info in connection.xinfo_consumers(STREAM, GROUP):
        name = _text(info["name"])
        if int(info["pending"]):
            continue
        if name == consumer or int(info["idle"]) > FORGET_CONSUMERS_AFTER_MS:
            connection.xgroup_delconsumer(STREAM, GROUP, name)


def _entries(raw: list) -> list[Entry]:
    return [(_text(entry_id), _fields(fields)) for entry_id, fields in raw]


def _fields(raw: dict) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
