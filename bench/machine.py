"""What the numbers were measured on: cores, CPU, memory, versions, and how busy the machine was."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _package_version(name: str) -> str:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() or "unknown"


def load() -> str:
    """The 1, 5 and 15 minute load averages: other work on a shared machine shows here."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def facts(postgres_url: str | None, redis_version: str | None) -> dict[str, str]:
    pg_version = "not used"
    if postgres_url:
        engine = create_engine(postgres_url)
        with engine.connect() as conn:
            pg_version = conn.scalar(text("SHOW server_version")) or "unknown"
        engine.dispose()
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cores": str(os.cpu_count()),
        "CPU": _cpu_model(),
        "RAM": _ram_gib(),
        "kernel": platform.release(),
        "Python": sys.version.split()[0],
        "PostgreSQL": pg_version,
        "SQLite": sqlite3.sqlite_version,
        "Redis": redis_version or "not used",
        "smtp-sink (postfix)": _package_version("postfix"),
        "code": (git or "unknown") + (" + uncommitted changes" if dirty else ""),
    }
