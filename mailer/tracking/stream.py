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

import redis

from mailer import streams

STREAM = "mailer:tracking:events"
GROUP = "flush"
# Guard for Redis memory if no flush runs for a long time (days of hits at any real volume):
# past this, the oldest entries are trimmed.
MAX_ENTRIES = 5_000_000

Entry = streams.Entry
FLUSH = streams.Group(STREAM, GROUP)
consumer_name = streams.consumer_name
ensure_group = FLUSH.ensure
read_new = FLUSH.read_new
claim_stale = FLUSH.claim_stale
acknowledge = FLUSH.acknowledge
pending_count = FLUSH.pending_count
retire = FLUSH.retire


def push(connection: redis.Redis, fields: dict[str, str]) -> str:
    """Append one hit; returns the entry id (`<milliseconds>-<sequence>`, Redis's clock)."""
    entry_id = connection.xadd(STREAM, fields, maxlen=MAX_ENTRIES, approximate=True)
    return streams.text(entry_id)
