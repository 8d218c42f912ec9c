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

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from mailer import streams
from mailer.consent.ledger import Visit
from mailer.consent.models import ConsentSource
from mailer.database import utcnow
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

Entry = streams.Entry


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

    @classmethod
    def checked(
        cls,
        form: CachedForm,
        args: dict,
        topics: list[str],
        version_id: int,
        visit: Visit,
        channel: str,
        origin: str | None,
    ) -> Accepted:
        """The sign-up as accepted now, from the checked fields (`SignupArgs`) and the topics
        and version `resolve` gave: one mapping for the view and its fast path."""
        return cls(
            form_id=form.id,
            form_version_id=version_id,
            email=args["email"],
            name=args["name"] if form.ask_name else "",
            topics=tuple(topics),
            at=utcnow(),
            visit=visit,
            channel=channel,
            origin=origin,
        )

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


DRAIN = streams.Group(STREAM, GROUP)
consumer_name = streams.consumer_name
ensure_group = DRAIN.ensure
read_new = DRAIN.read_new
claim_stale = DRAIN.claim_stale
acknowledge = DRAIN.acknowledge
release = DRAIN.release
waiting = DRAIN.waiting
retire = DRAIN.retire
