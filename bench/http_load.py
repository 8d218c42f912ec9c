"""HTTP load for the web cases (signup, pixel): gunicorn serving the app, `wrk` driving it.

The product runs exactly as in production, `gunicorn wsgi:app`, with what we recommend for a
2-core machine (`GUNICORN`; see bench/README.md). Its yardstick, a hello-world route in the same
app, runs under the same gunicorn settings from `bench.hello:app`, which is the product's own
`wsgi:app` plus that one route (so the hello-world pays for the same Flask app: its
before/after-request hooks, the limiter, the security headers). Each measurement starts its
own gunicorn and stops it after, so the two never share a warm process.

`wrk` (C, event-driven) is Debian's package; `ensure_wrk` installs it with apt-get when it is
missing, as root. Each wrk script in bench/wrk/ loads `report.lua`, whose `done()` prints one
JSON line of totals, read here instead of wrk's human summary.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import cpu
from bench.services import ServiceError, free_port

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_BIN = str(Path(sys.executable).with_name("gunicorn"))
# What we recommend: sync workers, 2 x cores + 1 (gunicorn's own rule of thumb; 5 on 2 cores):
# a worker waiting on PostgreSQL's commit leaves the core to another.
WORKERS = 2 * (os.cpu_count() or 1) + 1
GUNICORN = ("--worker-class", "sync", "--workers", str(WORKERS), "--backlog", "2048")
# wrk: one thread (the other core is gunicorn's), 32 open connections.
WRK_THREADS = 1
WRK_CONNECTIONS = 32
RESULT_MARK = "WRK-RESULT "
HELLO_PATH = "/bench/hello"  # served by `bench.hello:app`
SCRIPTS = Path(__file__).resolve().parent / "wrk"


@dataclass(frozen=True)
class WrkResult:
    requests: int  # responses received
    seconds: float
    non_2xx: int  # responses with a status outside 200-399
    socket_errors: int  # connect, read, write errors and timeouts
    latency_p50_ms: float
    latency_p99_ms: float
    # CPU microseconds per response of the processes named in `cpu_of` (server, Redis, ...).
    cpu_us: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def ensure_wrk(log: Callable[[str], None]) -> str:
    """The `wrk` binary; installs Debian's package when it is missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise ServiceError("wrk not found: install Debian's wrk package (apt-get install wrk)")
    log("  installing wrk (apt-get install wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        proc = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    found = shutil.which("wrk")
    if not found:
        raise ServiceError("could not install wrk: " + proc.stderr.strip()[-500:])
    return found


class Gunicorn:
    """`gunicorn <module>:app` on a free loopback port with the bench's settings; stopped by
    SIGTERM to its own process group (the arbiter, then its workers)."""

    def __init__(self, target: str, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    GUNICORN_BIN,
                    *GUNICORN,
                    "--no-control-socket",  # one shared path otherwise (~/.gunicorn)
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    target,
                ],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self) -> None:
        """Listening, then every worker done importing the app: workers import it after
        forking, each for about a second of CPU, so "listening" comes long before "ready".
        Ready is when the whole process tree has used no CPU for a while (idle workers wait
        in accept)."""
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + self.tail())
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("gunicorn did not listen within 90 s:\n" + self.tail())
            time.sleep(0.1)
        quiet, last = 0, -1.0
        while quiet < 3:
            used = cpu.tree_seconds(self.proc.pid)
            booted = self.tail(100_000).count("Booting worker") >= WORKERS
            quiet = quiet + 1 if booted and used - last < 0.02 else 0
            last = used
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("gunicorn workers did not settle:\n" + self.tail())
            time.sleep(0.25)

    def tail(self, size: int = 3000) -> str:
        text = self.log_path.read_text(errors="replace")
        return text[-size:]

    def check_clean(self) -> None:
        """No worker died or timed out, and no request raised, while it served."""
        text = self.tail(1_000_000)
        for sign in ("WORKER TIMEOUT", "Traceback", "Worker exiting", "was sent SIGKILL"):
            if sign in text:
                raise RuntimeError(f"gunicorn log shows {sign!r}:\n" + self.tail())

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def wrk(
    url: str,
    script: str,
    seconds: float,
    args: list[str] | None = None,
    connections: int = WRK_CONNECTIONS,
    threads: int = WRK_THREADS,
    cpu_of: list[int] | None = None,
) -> WrkResult:
    """Run wrk for `seconds` with a script from bench/wrk/ (`script`: its file name);
    `cpu_of`: process trees whose CPU time per response to report."""
    command = [
        "wrk",
        "--threads",
        str(threads),
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "30s",  # an overloaded server answers late; only a dead one fails the run
        "--script",
        str(SCRIPTS / script),
        url,
    ]
    if args:
        command += ["--", *args]
    before = cpu.snapshot({"all": cpu_of or []})["all"]
    proc = subprocess.run(
        command,
        cwd=SCRIPTS,  # the scripts load report.lua from here
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    used = cpu.snapshot({"all": cpu_of or []})["all"] - before
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(lines[-1][len(RESULT_MARK) :])
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        non_2xx=int(data["status"]),
        socket_errors=int(data["connect"] + data["read"] + data["write"] + data["timeout"]),
        latency_p50_ms=data["p50_us"] / 1000,
        latency_p99_ms=data["p99_us"] / 1000,
        cpu_us=used * 1e6 / max(1, int(data["requests"])),
    )


def versions() -> str:
    """gunicorn's and wrk's versions, for the report."""
    import gunicorn

    proc = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    wrk_version = (proc.stdout + proc.stderr).split()[1:2] or ["unknown"]
    return f"gunicorn {gunicorn.__version__}, wrk {wrk_version[0]}"


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
