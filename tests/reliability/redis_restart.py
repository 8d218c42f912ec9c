"""A Redis server of the reliability suite's own, restarted with its data kept (SHUTDOWN SAVE,
loaded back on start, as after a clean restart) or lost (as after a crash of a server without
persistence)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import redis

from tests.services import RedisServer


class RestartableRedis(RedisServer):
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        super().__init__(directory)

    def restart(self, keep_data: bool) -> None:
        dump = self.directory / "dump.rdb"
        if keep_data:
            client = redis.Redis(unix_socket_path=str(self.socket))
            with contextlib.suppress(redis.exceptions.ConnectionError):
                client.shutdown(save=True)
            self.proc.wait(timeout=60)
        else:
            self.proc.kill()
            self.proc.wait(timeout=10)
            dump.unlink(missing_ok=True)
        super().__init__(self.directory)  # loads dump.rdb when there is one
