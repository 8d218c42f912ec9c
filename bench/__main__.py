"""`bench/run`: start the servers, run the cases, write RESULTS.md, tear everything down.

    bench/run [--quick] [--recipients N] [--cases send,segments,export,signup,pixel]
              [--output PATH] [--subscribers N] [--events N] [--deliveries N] [--seconds N]
              [--profile DIR] [--keep]

Exit status: 0 when every case ran and its checks held (timings never fail a run), 1 when a
case broke, 2 for bad arguments or a missing server binary.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import http_load, machine, report
from bench.services import Postgres, Redis, ServiceError, SmtpSink

HERE = Path(__file__).resolve().parent
CASES = ("send", "segments", "export", "signup", "pixel")
FULL = {"recipients": 20_000, "subscribers": 1_000_000, "events": 1_000_000, "runs": 5}
QUICK = {"recipients": 300, "subscribers": 20_000, "events": 20_000, "runs": 3}
# The web cases (signup, pixel): pixel URLs of that many deliveries; wrk runs of `seconds`
# after a warm-up, `rounds` times, interleaved with the hello-world yardstick.
FULL.update(deliveries=20_000, seconds=10, warmup=5, rounds=3)
QUICK.update(deliveries=300, seconds=2, warmup=1, rounds=1)
SIZE_OF = {
    "send": "recipients",
    "segments": "subscribers",
    "export": "events",
    "signup": "seconds",
    "pixel": "deliveries",
}
WEB_CASES = ("signup", "pixel")
NAIVE_SAMPLE = {"full": (3000, 1000), "quick": (150, 60)}  # naive loop: (no DKIM, DKIM)


def _log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def _cases(value: str) -> list[str]:
    wanted = [c.strip() for c in value.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CASES]
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(f"cases are {', '.join(CASES)} (got {value!r})")
    return [c for c in CASES if c in wanted]


def _positive(value: str) -> int:
    number = int(value.replace("_", "").replace(",", ""))
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke check")
    parser.add_argument("--cases", type=_cases, default=list(CASES), help=",".join(CASES))
    parser.add_argument("--recipients", type=_positive, help="campaign size (default 20,000)")
    parser.add_argument("--subscribers", type=_positive, help="segment case (default 1,000,000)")
    parser.add_argument("--events", type=_positive, help="export case (default 1,000,000)")
    parser.add_argument("--deliveries", type=_positive, help="pixel case (default 20,000)")
    parser.add_argument("--seconds", type=_positive, help="each wrk run (default 10)")
    parser.add_argument("--output", type=Path, help="default bench/RESULTS.md (--quick: none)")
    parser.add_argument("--profile", type=Path, help="py-spy the send workers into this folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for name in ("recipients", "subscribers", "events", "deliveries", "seconds"):
        if getattr(args, name):
            sizes[name] = getattr(args, name)
    output = args.output or (None if args.quick else HERE / "RESULTS.md")
    command = "bench/run " + shlex.join(argv) if argv else "bench/run"
    # SIGTERM (CI timeouts, kill) ends the run through the same clean-up as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = Path(tempfile.mkdtemp(prefix="mailer-bench-"))
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = machine.load()
    stack: list[Any] = []
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    try:
        _log(f"work folder {workdir}; sizes {sizes}")
        pg = Postgres()
        stack.append(pg)
        redis = sink = None
        if {"send", *WEB_CASES} & set(args.cases):
            redis = Redis(workdir)
            stack.append(redis)
        if {"send", "signup"} & set(args.cases):
            sink = SmtpSink(workdir)
            stack.append(sink)
        if set(WEB_CASES) & set(args.cases):
            http_load.ensure_wrk(_log)
        facts = machine.facts(pg.url("postgres"), redis.version if redis else None)
        for case in args.cases:
            _log(f"case {case}")
            began = time.perf_counter()
            try:
                results[case] = _run_case(case, args, sizes, pg, redis, sink, workdir)
            except Exception:
                failures[case] = traceback.format_exc()
                _log(f"case {case} FAILED:\n{failures[case]}")
            _log(f"case {case} took {time.perf_counter() - began:.0f} s")
    except ServiceError as exc:
        _log(f"cannot start: {exc}")
        return 2
    finally:
        for service in reversed(stack):
            try:
                service.stop()
            except Exception as exc:  # keep tearing down the rest
                _log(f"stopping {type(service).__name__}: {exc}")
        if args.keep:
            _log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    info = report.RunInfo(command, started, facts, load_start, machine.load(), args.quick)
    sections = report.render_all(results, info)
    for case, error in failures.items():
        sections[case] = report.failed_section(case, error, info)
    text = "\n".join(sections[c] for c in CASES if c in sections)
    print("\n" + text)
    if output is not None:
        keyed = {_section_key(case, sizes): body for case, body in sections.items()}
        report.write(output, info, keyed)
        _log(f"wrote {output}")
    return 1 if failures else 0


def _section_key(case: str, sizes: dict[str, int]) -> str:
    """Another size than the default goes beside the default's section, not over it."""
    name = SIZE_OF[case]
    return case if sizes[name] == FULL[name] else f"{case}-{sizes[name]}"


def _run_case(case, args, sizes, pg, redis, sink, workdir: Path) -> Any:
    if case == "send":
        from bench import send

        profile = args.profile.resolve() if args.profile else None
        if profile:
            profile.mkdir(parents=True, exist_ok=True)
        naive = NAIVE_SAMPLE["quick" if args.quick else "full"]
        return send.run(pg, redis, sink, workdir, sizes["recipients"], naive, {}, profile, _log)
    if case == "segments":
        from bench import segments

        url = pg.create_database("bench_segments")
        return segments.run(url, workdir / "segments.db", sizes["subscribers"], sizes["runs"], _log)
    if case in WEB_CASES:
        from bench import pixel, signup

        timing = (sizes["rounds"], sizes["seconds"], sizes["warmup"])
        if case == "signup":
            return signup.run(pg, redis, sink, workdir, *timing, _log)
        return pixel.run(pg, redis, workdir, sizes["deliveries"], *timing, _log)
    from bench import export

    url = pg.create_database("bench_export")
    return export.run(url, workdir / "export.db", sizes["events"], workdir, _log)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
