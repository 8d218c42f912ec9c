"""A Redis stream read through a consumer group: what is in Redis is never lost to a crash.

Tracking hits and accepted sign-ups both wait in a stream until a worker writes them. A worker
reads through the group (`XREADGROUP`): an entry stays in the group's pending list until that
worker acknowledges it (`XACK`), which it does only after its rows are committed. If the
worker dies first, the next run takes the entry over (`XAUTOCLAIM`, once it has been idle long
enough that its reader is surely gone). Acknowledged entries are deleted, so the stream holds
only what is not yet in the database.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import redis
from redis.exceptions import ResponseError

Entry = tuple[str, dict[str, str]]
# A consumer that has not touched the group for this long is gone (a run lasts seconds).
FORGET_CONSUMERS_AFTER_MS = 3600 * 1000


def consumer_name() -> str:
    """Unique per run, so a run's unacknowledged entries are told apart from others'."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Group:
    stream: str
    name: str

    def ensure(self, connection: redis.Redis) -> None:
        """Create the stream and group once; from id 0, so entries made before it are read."""
        try:
            connection.xgroup_create(self.stream, self.name, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_new(self, connection: redis.Redis, consumer: str, count: int) -> list[Entry]:
        """Entries no consumer has read yet; they are pending for `consumer` from now on."""
        reply = connection.xreadgroup(self.name, consumer, {self.stream: ">"}, count=count)
        if not reply:
            return []
        return [(text(entry_id), _fields(fields)) for entry_id, fields in reply[0][1]]

    def claim_stale(
        self,
        connection: redis.Redis,
        consumer: str,
        min_idle_ms: int,
        count: int,
        start: str = "0-0",
    ) -> tuple[str, list[Entry], list[str]]:
        """Take over entries pending on other consumers for at least `min_idle_ms`.

        Returns (next start id, "0-0" when the scan is done; the claimed entries; ids of
        pending entries that no longer exist in the stream, which only need acknowledging).
        """
        reply = connection.xautoclaim(
            self.stream, self.name, consumer, min_idle_ms, start, count=count
        )
        gone = [text(i) for i in (reply[2] if len(reply) > 2 else [])]
        entries = []
        for entry_id, fields in reply[1]:
            if fields is None:  # Redis 6.2 reports deleted entries this way
                gone.append(text(entry_id))
            else:
                entries.append((text(entry_id), _fields(fields)))
        return text(reply[0]), entries, gone

    def acknowledge(self, connection: redis.Redis, ids: Iterable[str]) -> None:
        """Done with these entries: out of the pending list and out of the stream, atomically."""
        ids = list(ids)
        if not ids:
            return
        pipe = connection.pipeline(transaction=True)
        pipe.xack(self.stream, self.name, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()

    def release(
        self, connection: redis.Redis, consumer: str, ids: Iterable[str], idle_ms: int
    ) -> None:
        """Hand entries this run could not write (the database is down) to the next run at
        once: they stay pending, marked idle for `idle_ms`, which `claim_stale` takes as long
        enough."""
        ids = list(ids)
        if ids:
            connection.xclaim(self.stream, self.name, consumer, 0, ids, idle=idle_ms, justid=True)

    def pending_count(self, connection: redis.Redis) -> int:
        """Entries read by some consumer and not yet acknowledged."""
        try:
            return int(connection.xpending(self.stream, self.name)["pending"])
        except ResponseError:  # no stream or no group yet
            return 0

    def waiting(self, connection: redis.Redis) -> int:
        """Entries not yet written: in the stream, read or not (acknowledged ones are gone)."""
        return int(connection.xlen(self.stream))

    def retire(self, connection: redis.Redis, consumer: str) -> None:
        """Remove `consumer` if it holds nothing, and consumers idle for an hour that hold
        nothing. Only empty consumers are removed: deleting one drops its pending entries."""
        for info in connection.xinfo_consumers(self.stream, self.name):
            name = text(info["name"])
            if int(info["pending"]):
                continue
            if name == consumer or int(info["idle"]) > FORGET_CONSUMERS_AFTER_MS:
                connection.xgroup_delconsumer(self.stream, self.name, name)


def _fields(raw: dict) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
