"""CPU seconds used by a process tree, from /proc: where a run's CPU went (workers, PostgreSQL,
Redis, the SMTP sink), read before and after a measurement.

A process's own time plus the time of the children it has reaped (cutime, cstime) plus its
live children's trees: an RQ worker's finished work horses and PostgreSQL's closed backends
are counted by their parents, the running ones by walking the tree.
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after the last ")" are fixed.
    return raw.rsplit(")", 1)[1].split()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def tree_seconds(pid: int, children: dict[int, list[int]] | None = None) -> float:
    """CPU seconds (user + system) of `pid`, its reaped children and its live descendants."""
    children = _children() if children is None else children
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # After ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    own = sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK
    return own + sum(tree_seconds(child, children) for child in children.get(pid, []))


def snapshot(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds per named group of process trees."""
    children = _children()
    return {name: sum(tree_seconds(p, children) for p in group) for name, group in pids.items()}


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICK
