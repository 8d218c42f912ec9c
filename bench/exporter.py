"""One consent-export measurement, run as its own process so its peak RSS is its own:

    python -m bench.exporter product|raw|copy DATABASE_URL OUTPUT

Every method first builds the app (as `mailer consent export` does), so their memory starts
from the same base; only the export itself is timed. Prints {"rows": N, "seconds": S,
"peak_rss_kb": K} as JSON; K is VmHWM, read just before the process exits.

- product: `mailer.compliance.audit_export.write` on the app's session, exactly what the CLI runs;
- raw: the driver's cursor (server-side on PostgreSQL) straight into `csv.writer`, same columns;
- copy: PostgreSQL's `COPY (SELECT ...) TO STDOUT WITH CSV` written as it arrives.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time

from sqlalchemy import text

from mailer import config, create_app
from mailer.compliance import audit_export
from mailer.extensions import db

# Column names from the product's own constant, never from input.
SELECT = f"SELECT {', '.join(audit_export.FIELDS)} FROM consent_events ORDER BY seq"  # noqa: S608


def main(method: str, url: str, output: str) -> None:
    instance = os.path.dirname(os.path.abspath(output))
    settings = config.load(
        {
            **os.environ,
            "MAILER_ENV": "development",
            "MAILER_DATABASE_URL": url,
            "MAILER_SECRET_KEY": "bench-secret-key-" + "x" * 40,
            "MAILER_REDIS_URL": "redis://127.0.0.1:1/0",  # built, never connected to
            "MAILER_SMTP_URL": "smtp://127.0.0.1:1",
            "MAILER_INSTANCE_PATH": instance,
        }
    )
    app = create_app(settings)
    with app.app_context():
        session = db.session
        _warm(session)
        started = time.perf_counter()
        if method == "product":
            with open(output, "w", encoding="utf-8", newline="") as out:
                rows = audit_export.write(session, audit_export.Filter(), out, "csv")
        elif method == "raw":
            rows = _raw(session, output)
        elif method == "copy":
            rows = _copy(session, output)
        else:
            raise SystemExit(f"unknown method {method}")
        seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_kb": _peak_rss_kb()}))


def _warm(session) -> None:
    """PostgreSQL: every method starts with the ledger and its `seq` index in shared buffers.
    The methods run one after another on a fresh cluster, and whichever reads first would
    also pay for faulting in the buffers' shared memory (1 to 1.5 s of the server's system
    CPU here, 1 to 3 s of wall time): that measures the order of the runs, not the method."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(text("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
    session.execute(
        text("SELECT pg_prewarm('consent_events'), pg_prewarm('uq_consent_events_seq')")
    )
    session.commit()


def _peak_rss_kb() -> int:
    """This process's high-water RSS. Not the parent's `wait4` ru_maxrss: Linux folds the
    RSS the forked child had before exec (the parent's pages) into that figure."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _raw(session, output: str) -> int:
    connection = session.connection().connection.dbapi_connection
    rows = 0
    with open(output, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(audit_export.FIELDS)
        if session.get_bind().dialect.name == "postgresql":
            with connection.cursor(name="bench_export") as cur:
                cur.itersize = 5000
                cur.execute(SELECT)
                for row in cur:
                    writer.writerow(row)
                    rows += 1
        else:
            cur = connection.cursor()
            cur.arraysize = 5000
            cur.execute(SELECT)
            for row in cur:
                writer.writerow(row)
                rows += 1
            cur.close()
    return rows


def _copy(session, output: str) -> int:
    connection = session.connection().connection.dbapi_connection
    lines = 0
    statement = f"COPY ({SELECT}) TO STDOUT WITH (FORMAT csv, HEADER)"
    with open(output, "wb") as out, connection.cursor() as cur, cur.copy(statement) as copy:
        for chunk in copy:
            out.write(chunk)
            lines += bytes(chunk).count(b"\n")
    return lines - 1  # the header


if __name__ == "__main__":
    main(*sys.argv[1:4])
