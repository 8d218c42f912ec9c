"""RESULTS.md: each case's figures with their ratios to the baselines of the same run, the
machine, and the exact command.

A run replaces the sections of the cases it ran and keeps the others (each section names the
run it came from), so `bench/run --cases segments` does not throw away the send figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.export import LABELS, ExportResult
from bench.http_load import WrkResult
from bench.pixel import PixelResult
from bench.segments import RULES, SegmentResult
from bench.send import Config, SendResults
from bench.signup import SignupResult

ORDER = ("send", "segments", "export", "signup", "pixel")
HEADER = """# Benchmark results

Written by `bench/run` (how to run it, and what each case measures: [README.md](README.md)).
Every figure comes with its ratio to a baseline measured in the same run on the same machine,
so the noise of a shared machine mostly cancels; compare ratios across runs, not raw figures.
"""


@dataclass
class RunInfo:
    command: str
    started: str
    facts: dict[str, str]
    load_start: str
    load_end: str
    quick: bool


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _x(value: float) -> str:
    return f"{value:.2f}x"


def _goal(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _run_line(info: RunInfo) -> str:
    f = info.facts
    quick = " (**--quick: tiny sizes, a smoke check, not a measurement**)" if info.quick else ""
    return (
        f"Measured {info.started} by `{info.command}`{quick} at {f['code']}, on {f['cores']} "
        f"cores ({f['CPU']}), {f['RAM']}, Python {f['Python']}, PostgreSQL {f['PostgreSQL']}, "
        f"SQLite {f['SQLite']}. Load average (1/5/15 min) {info.load_start} at the start, "
        f"{info.load_end} at the end."
    )


def machine_section(info: RunInfo) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in info.facts.items())
    return (
        "## Machine (latest run)\n\n| | |\n| --- | --- |\n"
        f"{rows}\n\nCommand: `{info.command}`, started {info.started}.\n"
    )


def send_section(r: SendResults, info: RunInfo) -> str:
    lines = [
        f"## 1. Campaign send, end to end ({_n(r.recipients)} recipients, PostgreSQL)",
        "",
        _run_line(info),
        "",
        f"Template: `bench/newsletter.mjml`, {_n(r.template_bytes / 1024, 1)} KB of compiled "
        "HTML, personalised subject, preheader and body, open and click tracking on, "
        "List-Unsubscribe (https and mailto) with one-click POST, List-Id, Feedback-ID, Reply-To. "
        f"Message size: {_n(r.message_bytes['DKIM off'] / 1024, 1)} KB, "
        f"{_n(r.message_bytes['DKIM on'] / 1024, 1)} KB with DKIM (RSA 2048). Settings: "
        + ", ".join(f"`{k}={v}`" for k, v in r.settings.items())
        + "; PostgreSQL with durable defaults (fsync, synchronous_commit on); real `mailer "
        "worker` processes (RQ) on Redis over a unix socket; Postfix `smtp-sink` on loopback. "
        "The clock runs from `lifecycle.send_now` to the campaign's `finished_at`; every "
        "delivery was checked `sent` and the sink's counter matched.",
        "",
        "| product | msg/s | seconds | vs ceiling (same processes) | vs naive stack (same "
        "processes, same DKIM) | resolve (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cfg, m in r.product.items():
        ceiling = r.ceiling[cfg.workers].rate
        naive = r.naive[(cfg.workers, cfg.dkim)].rate
        lines.append(
            f"| {cfg.label} | {_n(m.rate)} | {_n(m.seconds, 1)} | {_x(m.rate / ceiling)} "
            f"| {_x(m.rate / naive)} | {_n(m.detail['resolve_seconds'], 2)} |"
        )
    lines += ["", "| baseline | msg/s | messages | seconds |", "| --- | ---: | ---: | ---: |"]
    for m in [*r.ceiling.values(), *r.naive.values()]:
        lines.append(f"| {m.label} | {_n(m.rate)} | {_n(m.messages)} | {_n(m.seconds, 1)} |")
    lines += [
        "",
        "Where the CPU went, in CPU milliseconds per message (from /proc: the worker processes "
        "with their work horses, the whole PostgreSQL cluster, Redis, the sink), how busy "
        "the machine was (all cores, everything on it), and the rate those CPU costs would "
        "allow with every core busy on this send and nothing else (1000 * cores / the sum):",
        "",
        "| product | workers | PostgreSQL | Redis | smtp-sink | machine busy | CPU-bound rate |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    cores = int(info.facts.get("cores") or 1)
    for cfg, m in r.product.items():
        c = m.detail["cpu_ms_per_message"]
        total = sum(c.values())
        lines.append(
            f"| {cfg.label} | {_n(c['workers'], 2)} | {_n(c['postgres'], 2)} "
            f"| {_n(c['redis'], 2)} | {_n(c['smtp-sink'], 2)} "
            f"| {m.detail['machine_busy']:.0%} | {_n(cores * 1000 / total) if total else '—'} |"
        )
    for cfg, m in r.product.items():
        if cfg == Config(2, False) and m.detail.get("statements"):
            lines += [
                "",
                f"Where PostgreSQL spent its time ({cfg.label}; pg_stat_statements, execution "
                "time only, statements of the send database):",
                "",
                "| calls | total ms | mean ms | rows | statement |",
                "| ---: | ---: | ---: | ---: | --- |",
            ]
            for calls, total, mean, rows, sql in m.detail["statements"]:
                sql = sql.replace("|", "\\|")
                lines.append(f"| {_n(calls)} | {_n(total)} | {mean:.3f} | {_n(rows)} | `{sql}` |")
    delay, relay = r.relay
    if relay:
        lines += [
            "",
            f"Against a relay {delay * 1000:.0f} ms away (`bench/relay.py`: a proxy in front of "
            f"the sink holds every SMTP reply {delay * 1000:.0f} ms), one worker, DKIM off, "
            f"{_n(next(iter(relay.values())).messages)} recipients, same checks:",
            "",
            "| product | msg/s | seconds | vs 1 sender |",
            "| --- | ---: | ---: | ---: |",
        ]
        first = next(iter(relay.values())).rate
        for cfg, m in relay.items():
            lines.append(
                f"| {cfg.label} | {_n(m.rate)} | {_n(m.seconds, 1)} | {_x(m.rate / first)} |"
            )
    lines += ["", *_send_goals(r)]
    if r.profiles:
        lines += [
            "",
            "py-spy profiles (collapsed stacks): " + ", ".join(p.name for p in r.profiles),
        ]
    return "\n".join(lines) + "\n"


def _send_goals(r: SendResults) -> list[str]:
    two_plain = r.product.get(Config(2, False))
    two_signed = r.product.get(Config(2, True))
    one_plain = r.product.get(Config(1, False))
    one_signed = r.product.get(Config(1, True))
    out = ["Goals (issue 6):", ""]
    if two_plain:
        ceiling = two_plain.rate / r.ceiling[2].rate
        rate = two_plain.rate
        out.append(f"- 2 workers, no DKIM, ≥ 830 msg/s: {_n(rate)} — {_goal(rate >= 830)}")
        out.append(
            f"- 2 workers, no DKIM, ≥ 60% of the ceiling: {ceiling:.0%} — {_goal(ceiling >= 0.6)}"
        )
    if two_signed:
        naive = two_signed.rate / r.naive[(2, True)].rate
        rate = two_signed.rate
        out.append(f"- 2 workers, DKIM, ≥ 500 msg/s: {_n(rate)} — {_goal(rate >= 500)}")
        out.append(f"- 2 workers, DKIM, ≥ 5x the naive stack: {_x(naive)} — {_goal(naive >= 5)}")
    for one, two, what in ((one_plain, two_plain, "no DKIM"), (one_signed, two_signed, "DKIM")):
        if one and two:
            scale = two.rate / one.rate
            out.append(
                f"- Scale-out (case 6), 2 workers ≥ 1.7x 1 worker ({what}): {_x(scale)} — "
                f"{_goal(scale >= 1.7)}"
            )
    one, two = r.product.get(Config(1, False, senders=1)), r.product.get(Config(2, False, 1))
    if one and two:
        out.append(
            f"- For comparison, one sender a worker (no DKIM): 2 workers {_x(two.rate / one.rate)} "
            "1 worker (see bench/README.md, §6)"
        )
    return out


def segments_section(results: list[SegmentResult], info: RunInfo) -> str:
    subscribers = results[0].subscribers if results else 0
    lines = [
        f"## 2. Segment count ({_n(subscribers)} subscribers)",
        "",
        _run_line(info),
        "",
        "Rules: `" + str(RULES).replace("'", '"') + "` through `mailer.segments.service.count`, "
        "against a hand-written `SELECT count(*) ... JOIN subscriptions ... WHERE <plan> AND "
        "last_open_at BETWEEN ...` (`bench/segments.py`). Median of "
        f"{results[0].runs if results else 0} warm runs each; both counts agree.",
        "",
        "| database | members | product (ms) | hand-written (ms) | product / hand-written | goal |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in results:
        ok = s.ratio <= 1.5 and (s.database != "PostgreSQL" or s.product_seconds < 1)
        goal = "≤ 1.5x" + (", < 1 s" if s.database == "PostgreSQL" else "")
        lines.append(
            f"| {s.database} | {_n(s.members)} | {_n(s.product_seconds * 1000, 1)} "
            f"| {_n(s.hand_seconds * 1000, 1)} | {_x(s.ratio)} | {goal}: {_goal(ok)} |"
        )
    return "\n".join(lines) + "\n"


def export_section(results: list[ExportResult], info: RunInfo) -> str:
    events = results[0].rows if results else 0
    lines = [
        f"## 3. Consent audit export as CSV ({_n(events)} events)",
        "",
        _run_line(info),
        "",
        "Each method runs in its own process after building the app (as `mailer consent "
        "export` does) and writes a file; peak RSS is that process's high-water mark "
        "(VmHWM from /proc, read as it ends). Rows are chained events with valid hashes "
        "(checked through the ORM).",
        "",
        "| database | method | rows/s | seconds | vs raw loop | vs COPY | peak RSS (MB) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    by = {(e.database, e.method): e for e in results}
    for e in results:
        raw = by.get((e.database, "raw"))
        copy = by.get((e.database, "copy"))
        lines.append(
            f"| {e.database} | {LABELS[e.method]} | {_n(e.rate)} | {_n(e.seconds, 1)} "
            f"| {_x(e.rate / raw.rate) if raw else '—'} "
            f"| {_x(e.rate / copy.rate) if copy else '—'} "
            f"| {_n(e.peak_rss_mb)} |"
        )
    lines += ["", "Goals (issue 6):", ""]
    for database in ("SQLite", "PostgreSQL"):
        product, raw = by.get((database, "product")), by.get((database, "raw"))
        if product and raw:
            ratio = product.rate / raw.rate
            lines.append(
                f"- {database}: at least as fast as the raw loop: {_x(ratio)} — {_goal(ratio >= 1)}"
            )
            lines.append(
                f"- {database}: peak RSS < 200 MB: {_n(product.peak_rss_mb)} MB — "
                f"{_goal(product.peak_rss_mb < 200)}"
            )
    product, copy = by.get(("PostgreSQL", "product")), by.get(("PostgreSQL", "copy"))
    if product and copy:
        ratio = product.rate / copy.rate
        lines.append(f"- PostgreSQL: ≥ 50% of COPY: {ratio:.0%} — {_goal(ratio >= 0.5)}")
    return "\n".join(lines) + "\n"


def _web_rows(rows: list[tuple[str, list[WrkResult]]], yardstick: float) -> list[str]:
    from bench.http_load import median

    lines = [
        "| what | req/s (median) | each round | CPU µs per request | latency p50 / p99 (ms) "
        "| vs hello-world |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for label, runs in rows:
        rate = median([r.rate for r in runs])
        lines.append(
            f"| {label} | {_n(rate)} | {', '.join(_n(r.rate) for r in runs)} "
            f"| {_n(median([r.cpu_us for r in runs]))} "
            f"| {_n(median([r.latency_p50_ms for r in runs]), 1)} / "
            f"{_n(median([r.latency_p99_ms for r in runs]), 1)} | {rate / yardstick:.0%} |"
        )
    return lines


def _web_setup(settings: dict[str, str], rounds: int, seconds: float) -> str:
    from bench.http_load import WRK_CONNECTIONS, WRK_THREADS

    return (
        f"`gunicorn {settings['gunicorn']}` on loopback, driven by `wrk -t{WRK_THREADS} "
        f"-c{WRK_CONNECTIONS}` for {rounds} round(s) of {seconds:g} s after a warm-up, "
        "the yardstick and the product interleaved, each in a fresh server; figures are "
        f"medians of the rounds ({settings['versions']}). CPU µs per request: the server's "
        "process tree"
    )


def signup_section(r: SignupResult, info: RunInfo) -> str:
    rounds = len(r.rounds["signup"])
    limits = ", ".join(f"`{k}={v}`" for k, v in r.settings.items() if k.startswith("MAILER_"))
    lines = [
        "## 4. Sign-up under load: `POST /subscribe/<form>` (gunicorn, wrk, PostgreSQL)",
        "",
        _run_line(info),
        "",
        "The hosted form's POST as a browser sends it (CSRF token, signed start time and "
        "session cookie from one real GET of the form page, fetched more than the minimum "
        "fill time before; consent ticked; a name; the empty honeypot), with a new address "
        "every request, against `GET /bench/hello` of the same app (`bench.hello`). "
        + _web_setup(r.settings, rounds, r.seconds)
        + ", PostgreSQL and Redis. The per-IP limit is raised for the run, every request "
        f"coming from 127.0.0.1: {limits}; the per-address limit, the minimum fill time and "
        "the confirmation window keep their defaults.",
        "",
        *_web_rows(
            [("hello-world", r.rounds["hello"]), ("sign-up (`wsgi:app`)", r.rounds["signup"])],
            r.rate("hello"),
        ),
        "",
        "A request checks the sign-up and accepts it into Redis (one XADD); the workers write "
        "it. The requests enqueued "
        f"{_n(r.kicks)} drain jobs (at most one per half-second). After the runs, the drain "
        "(`workers.jobs.drain_signups`, batches of up to 500 per transaction) wrote the "
        f"{_n(r.subscribers)} accepted sign-ups in {_n(r.drain_seconds, 1)} s "
        f"({_n(r.subscribers / r.drain_seconds)} sign-ups/s written, one process).",
        "",
        f'Count check: wrk got the "check your inbox" page {_n(r.accepted)} times (warm-ups '
        f"included, none refused); the database holds {_n(r.subscribers)} new subscribers "
        f'(requests still in flight when wrk stopped count too), each with its "requested" '
        f"consent event ({_n(r.events)}) and its confirmation email ({_n(r.emails)} rows, "
        f"{_n(r.queued)} in queued send jobs of up to 50). {r.settings['send_workers']} "
        "`mailer worker --burst` "
        "then sent them all in "
        f"{_n(r.send_seconds, 1)} s ({_n(r.sent / r.send_seconds)} emails/s); the SMTP sink "
        f"accepted {_n(r.sent)}.",
        "",
        "Goals (issue 6):",
        "",
        f"- Sign-up ≥ 50% of hello-world requests/s: {r.ratio:.0%} — {_goal(r.ratio >= 0.5)}",
        f"- Every accepted sign-up has its consent event and its confirmation email: "
        f"{_n(r.subscribers)} / {_n(r.events)} / {_n(r.sent)} — met",
    ]
    return "\n".join(lines) + "\n"


def pixel_section(r: PixelResult, info: RunInfo) -> str:
    rounds = len(r.rounds["pixel"])
    lost = r.recorded - r.events
    lines = [
        f"## 5. Open pixel under load: `GET /t/o/<token>` ({_n(r.deliveries)} deliveries)",
        "",
        _run_line(info),
        "",
        "Real pixel URLs of a sent campaign's deliveries, signed by the product "
        "(`TrackingLinks.open_pixel`), fetched in turn with a browser's user agent, against "
        "`GET /bench/hello` of the same app (`bench.hello`); also the same app with the "
        "pixel's fast path taken off (`bench.hello:flask_view`: the Flask view answers), to "
        "show what the fast path buys. "
        + _web_setup(r.settings, rounds, r.seconds)
        + " and Redis. Each hit is one XADD to Redis (unix socket) before the answer leaves.",
        "",
        *_web_rows(
            [
                ("hello-world", r.rounds["hello"]),
                ("open pixel (`wsgi:app`)", r.rounds["pixel"]),
                ("open pixel through the Flask view", r.rounds["view"]),
            ],
            r.rate("hello"),
        ),
        "",
        f"Count check: Redis counted {_n(r.recorded)} XADD calls (wrk got {_n(r.answered)} "
        "pixels back, warm-ups included; requests in flight when wrk stopped count too); "
        f"the flush (`flush_events`, as `mailer cron` runs it) wrote {_n(r.events)} open "
        f"events in {_n(r.flush_seconds, 1)} s ({_n(r.events / max(r.flush_seconds, 1e-9))} "
        f"events/s), and the subscribers' open counters grew by {_n(r.profile_opens)}.",
        "",
        "Goals (issue 6):",
        "",
        f"- Open pixel ≥ 80% of hello-world requests/s: {r.ratio:.0%} — {_goal(r.ratio >= 0.8)}",
        f"- Zero pixel hits lost: {_n(lost)} lost — {_goal(lost == 0)}",
    ]
    return "\n".join(lines) + "\n"


def failed_section(case: str, error: str, info: RunInfo) -> str:
    return f"## {case}: FAILED\n\n{_run_line(info)}\n\n```\n{error[-3000:]}\n```\n"


_SECTION = re.compile(r"<!-- case:([\w-]+) -->\n(.*?)<!-- /case:\1 -->\n", re.S)


def write(path: Path, info: RunInfo, sections: dict[str, str]) -> None:
    """Replace the given sections in `path` (or start it), keep the rest. A section's key is
    its case, with the size when it is not the default (`send-100000`), so a run at another
    size is recorded beside the default one instead of replacing it."""
    kept: dict[str, str] = {}
    if path.exists():
        kept = {m.group(1): m.group(2) for m in _SECTION.finditer(path.read_text())}
    kept.update(sections)
    parts = [HEADER, machine_section(info)]

    def position(key: str) -> tuple[int, int]:
        case, _, size = key.partition("-")
        return ORDER.index(case) if case in ORDER else len(ORDER), int(size or 0)

    for key in sorted(kept, key=position):
        parts.append(f"<!-- case:{key} -->\n{kept[key]}<!-- /case:{key} -->\n")
    path.write_text("\n".join(parts))


def render_all(results: dict[str, Any], info: RunInfo) -> dict[str, str]:
    builders = {
        "send": send_section,
        "segments": segments_section,
        "export": export_section,
        "signup": signup_section,
        "pixel": pixel_section,
    }
    return {case: builders[case](value, info) for case, value in results.items()}
