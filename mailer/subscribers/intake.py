"""The sign-up intake: a checked request becomes one Redis stream entry before it is answered.

After a campaign goes out, sign-ups come in bursts; writing each one to the database inside
its request (a dozen statements, the ledger head locked until the commit) caps the form at a
few dozen requests a second. So the request path checks everything that can refuse a request
(provenance, honeypot, fields, topics, consent text version), captures the evidence as it is
at that moment (time, truncated IP, user agent, locale, the form version shown), and appends
it here with one `XADD`: durable in Redis before the "check your inbox" answer leaves. The
workers then write entries in batches (`mailer.subscribers.drain`).

The stream is read through a consumer group: an entry stays pending until the drain that read
it acknowledges it, after its rows are committed. A drain that dies leaves its entries pending
and the next one takes them over (`claim_stale`); one that fails because the database is down
hands them straight back (`release`). The consent event is keyed by the entry id, so an entry
written just before its reader died is not written twice. Entries are never trimmed: each one
is a person's consent.

The request path also "kicks" a drain: the first sign-up in each `KICK_MS` window enqueues
the drain job (`SET NX PX` in the same round trip as the `XADD`), so a confirmation email does
not wait for `mailer cron`, and a burst enqueues at most one job per window.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from redis.exceptions import ResponseError

from mailer.consent.ledger import Visit
from mailer.consent.models import ConsentSource
from mailer.subscribers import signup
from mailer.subscribers.form_cache import CachedForm
from mailer.subscribers.signup import SignupRequest

STREAM = "mailer:signups"
GROUP = "drain"
KICK = "mailer:signups:kick"
KICK_MS = 500
FORMAT = "1"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
# A consumer that has not touched the group for this long is gone (a drain run takes seconds).
FORGET_CONSUMERS_AFTER_MS = 3600 * 1000

Entry = tuple[str, dict[str, str]]


@dataclass(frozen=True)
class Accepted:
    """A sign-up as the request path checked and captured it."""

    form_id: int
    form_version_id: int  # resolved when accepted: the version shown, or the current one
    email: str  # validated and normalised
    name: str  # empty unless the form asks for a name
    topics: tuple[str, ...]  # the topics signed up for, resolved when accepted
    at: datetime  # when the person asked
    visit: Visit
    channel: str  # hosted | embed | json
    origin: str | None = None

    def request(self, intake_id: str | None = None) -> SignupRequest:
        """The sign-up request to write (`signup.write_requests`)."""
        return SignupRequest(
            form_id=self.form_id,
            email=self.email,
            name=self.name,
            topic_slugs=list(self.topics),
            visit=self.visit,
            form_version_id=self.form_version_id,
            evidence={"channel": self.channel, "origin": self.origin},
            source=ConsentSource.FORM,
            occurred_at=self.at,
            intake_id=intake_id,
        )


def resolve(form: CachedForm, asked: list[str], version_id: int | None) -> tuple[list[str], int]:
    """The topics signed up for and the consent text version shown (the current one if the
    request does not say). Raises `signup.UnknownTopics`, `signup.NoTopicChosen` or
    `signup.UnknownFormVersion`, as writing the request would."""
    topics = signup.choose_topics(form.topics, asked, form.slug)
    version_id = version_id or form.current_version_id
    if version_id not in form.version_ids:
        raise signup.UnknownFormVersion(version_id)
    return topics, version_id


class BadEntry(ValueError):
    """An entry that cannot be read back (an unknown format, a missing field)."""


def encode(accepted: Accepted) -> dict[str, str]:
    visit = accepted.visit
    return {
        "v": FORMAT,
        "f": str(accepted.form_id),
        "fv": str(accepted.form_version_id),
        "e": accepted.email,
        "n": accepted.name,
        "t": ",".join(accepted.topics),  # slugs have no commas
        "at": str((accepted.at - EPOCH) // MICROSECOND),
        "ip": visit.ip or "",
        "ua": visit.user_agent or "",
        "l": visit.locale or "",
        "c": accepted.channel,
        "o": accepted.origin or "",
    }


def decode(entry_id: str, fields: dict[str, str]) -> SignupRequest:
    """The request an entry stands for; raises `BadEntry`."""
    try:
        if fields["v"] != FORMAT:
            raise BadEntry(f"unknown entry format {fields['v']!r}")
        accepted = Accepted(
            form_id=int(fields["f"]),
            form_version_id=int(fields["fv"]),
            email=fields["e"],
            name=fields["n"],
            topics=tuple(t for t in fields["t"].split(",") if t),
            at=EPOCH + int(fields["at"]) * MICROSECOND,
            visit=Visit(
                ip=fields["ip"] or None, user_agent=fields["ua"] or None, locale=fields["l"] or None
            ),
            channel=fields["c"],
            origin=fields["o"] or None,
        )
    except (KeyError, ValueError, OverflowError) as exc:
        if isinstance(exc, BadEntry):
            raise
        raise BadEntry(f"{type(exc).__name__}: {exc}") from None
    return accepted.request(entry_id)


def push(connection: redis.Redis, accepted: Accepted) -> bool:
    """Append one sign-up (one round trip, with the kick). True if this call opened a new
    kick window: the caller then enqueues the drain job. Raises RedisError: not accepted."""
    pipe = connection.pipeline(transaction=False)
    pipe.xadd(STREAM, encode(accepted))
    pipe.set(KICK, b"1", nx=True, px=KICK_MS)
    _entry_id, kicked = pipe.execute()
    return bool(kicked)


def consumer_name() -> str:
    """Unique per drain run, so a run's unacknowledged entries are told apart from others'."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def ensure_group(connection: redis.Redis) -> None:
    """Create the stream and group once; from id 0, so entries made before it are read too."""
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
    return [(_text(entry_id), _fields(fields)) for entry_id, fields in reply[0][1]]


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


def release(connection: redis.Redis, consumer: str, ids: Iterable[str], idle_ms: int) -> None:
    """Hand entries this run could not write (the database is down) to the next run at once:
    they stay pending, marked idle for `idle_ms`, which `claim_stale` takes as long enough."""
    ids = list(ids)
    if ids:
        connection.xclaim(STREAM, GROUP, consumer, 0, ids, idle=idle_ms, justid=True)


def waiting(connection: redis.Redis) -> int:
    """Entries not yet written: in the stream, read or not (acknowledged ones are deleted)."""
    return int(connection.xlen(STREAM))


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


def _fields(raw: dict) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
