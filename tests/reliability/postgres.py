"""A PostgreSQL cluster of the reliability suite's own, so restarting it cannot break the
cluster every other test shares. Built with the suite's own helper (tests/services.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from mailer import migrate
from mailer.models import Base
from tests.services import PostgresCluster, _pg_bin

T = TypeVar("T")


class RestartablePostgres(PostgresCluster):
    """A throwaway cluster, migrated, that a test may restart under load."""

    def __init__(self) -> None:
        super().__init__()
        migrate.upgrade(self.url)

    def restart(self) -> None:
        """`pg_ctl restart -m fast` as the postgres user: every connection is cut, in-flight
        transactions roll back, and the server is back (with the same options) on return."""
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "pg.log"),
            "-m",
            "fast",
            "-w",
            "-t",
            "120",
            "restart",
        )

    @contextmanager
    def down(self) -> Iterator[None]:
        """Stopped for the block (`pg_ctl stop -m fast`: connections cut), started again after
        with the same options."""
        pg_ctl = _pg_bin("pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")
        try:
            yield
        finally:
            log = str(self.dir / "pg.log")
            self._run(pg_ctl, "-D", str(self.data), "-l", log, "-w", "-o", self.options, "start")

    def empty(self) -> None:
        """Every table emptied, as tests/conftest.py does for the shared cluster."""
        engine = create_engine(self.url)
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "ledger_head")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            conn.execute(text("SET lock_timeout = '20s'"))
            conn.execute(text("SET session_replication_role = replica"))
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            conn.execute(
                text("UPDATE ledger_head SET seq = 0, hash = :genesis"), {"genesis": "0" * 64}
            )
        engine.dispose()


def retrying(read: Callable[[], T], timeout: float = 60.0) -> T:
    """Run a read that may meet a connection the restart cut; the next try gets a new one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return read()
        except DBAPIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
