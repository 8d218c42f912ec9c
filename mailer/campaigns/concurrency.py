"""Several senders in one worker process: threads, each a whole `Sender` of its own.

Why: a sender spends most of a message waiting, on the commit of the message's `sending` mark
and on the SMTP server's two replies (see `sending`), and that chain cannot be shortened
without putting more recipients in doubt after a crash. Against a relay a few milliseconds
away the wait is nearly all of it: one sender a process sent 40 messages a second to a relay
10 ms away, four 118 (bench/RESULTS.md); even on loopback one sender left its core a third
idle. Python releases the GIL while it waits on a socket, so `send_concurrency` senders in
one process overlap their waits and keep the process busy.

Each thread runs its own `Sender` (its own claim token and pages, its own two database
connections and its own SMTP connection); they share only the engine's pool and the
campaign's rate limit (counted in Redis). The exactly-once protocol is therefore the same as
between senders in different processes, and the reliability suite covers both.

SQLite gets one sender: it takes one writer at a time, and every message commits.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mailer.campaigns.sending import Next, RunResult

# Two connections a sender (see `Sender.run`); the pool holds 15 (`database.make_engine`).
MAX_SENDERS = 6


def senders(setting: int, dialect: str) -> int:
    """How many senders one job runs at once."""
    if dialect == "sqlite":
        return 1
    return max(1, min(setting, MAX_SENDERS))


def run(sender: Callable[[], RunResult], count: int) -> RunResult:
    """Run `sender` `count` times side by side and merge what they ask for next.

    An exception in one sender does not stop the others (each leaves its page in a state the
    protocol recovers); the first one is raised once all have ended, so the job fails and RQ
    retries it."""
    if count <= 1:
        return sender()
    with ThreadPoolExecutor(count, thread_name_prefix="sender") as pool:
        futures = [pool.submit(sender) for _ in range(count)]
    return merged([future.result() for future in futures])


def merged(results: list[RunResult]) -> RunResult:
    """One answer for the job: go on at once if any sender ran out of time (its page is not
    done), else come back at the earliest time any sender asked for, else done."""
    counts: dict[str, int] = {}
    for result in results:
        for key, n in result.counts.items():
            counts[key] = counts.get(key, 0) + n
    if any(r.next is Next.AGAIN for r in results):
        return RunResult(Next.AGAIN, None, counts)
    later = [r.at for r in results if r.next is Next.LATER and r.at is not None]
    if later:
        return RunResult(Next.LATER, min(later), counts)
    return RunResult(Next.DONE, None, counts)
