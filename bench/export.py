"""Case 3, consent audit export as CSV: rows/s and peak RSS of the product's streaming export
against a raw cursor-to-`csv.writer` loop and, on PostgreSQL, `COPY ... TO STDOUT`.

Each measurement is its own process (`bench.exporter`); its peak RSS is that process's own
high-water mark (VmHWM), and it writes to a file that is checked for its row count and then
deleted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import population
from mailer import config, migrate
from mailer.database import make_engine

METHODS = {"SQLite": ("product", "raw"), "PostgreSQL": ("product", "raw", "copy")}
LABELS = {
    "product": "product (`audit_export.write`)",
    "raw": "raw cursor → csv.writer",
    "copy": "COPY ... TO STDOUT WITH CSV",
}


@dataclass
class ExportResult:
    database: str
    method: str
    rows: int
    seconds: float
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


def _ledger_key() -> bytes:
    # The same derivation the exporter's settings make from its secret key.
    settings = config.load(
        {
            "MAILER_SECRET_KEY": "bench-secret-key-" + "x" * 40,
            "MAILER_DATABASE_URL": "sqlite://",
            "MAILER_REDIS_URL": "redis://127.0.0.1:1/0",
            "MAILER_SMTP_URL": "smtp://127.0.0.1:1",
        }
    )
    return settings.ledger_key


def _export(method: str, url: str, output: Path) -> ExportResult:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.exporter", method, url, str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    if proc.wait() != 0:
        raise RuntimeError(f"export ({method}) failed: {err.decode(errors='replace')[-2000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    return ExportResult("", method, result["rows"], result["seconds"], result["peak_rss_kb"] / 1024)


def measure(url: str, database: str, events: int, workdir: Path, log: Any) -> list[ExportResult]:
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        population.load_ledger(engine, events, _ledger_key())
        seconds = time.perf_counter() - started
        log(f"  {database}: {events:,} chained consent events loaded in {seconds:.1f} s")
    finally:
        engine.dispose()
    results = []
    output = workdir / "export.csv"
    for method in METHODS[database]:
        result = _export(method, url, output)
        result.database = database
        size = output.stat().st_size
        output.unlink()
        if result.rows != events:
            raise RuntimeError(
                f"{database} {method}: exported {result.rows} rows, expected {events}"
            )
        log(
            f"  {database}, {LABELS[method]}: {result.rate:,.0f} rows/s "
            f"({result.seconds:.1f} s, {size / 1e6:,.0f} MB), peak RSS {result.peak_rss_mb:,.0f} MB"
        )
        results.append(result)
    return results


def run(pg_url: str, sqlite_path: Path, events: int, workdir: Path, log: Any) -> list[ExportResult]:
    return [
        *measure(f"sqlite:///{sqlite_path}", "SQLite", events, workdir, log),
        *measure(pg_url, "PostgreSQL", events, workdir, log),
    ]
