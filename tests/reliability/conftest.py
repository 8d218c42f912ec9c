"""Fixtures of the reliability suite, and the summary it prints at the end of the run.

Every test here feeds a `recorder` fixture with what it did (faults injected, recipients
checked, inputs tried) and what it found (5xx answers, duplicates, losses); the terminal
summary prints the totals, so a green run also says how hard it pushed. The assertions live in
the tests: the summary only reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.campaigns.conftest import FaultySmtp


@dataclass
class Tally:
    """Counters one run of the reliability suite adds up."""

    faults: dict[str, int] = field(default_factory=dict)
    recipients_checked: int = 0
    inputs_tried: int = 0
    server_errors: int = 0
    duplicates: int = 0
    losses: int = 0
    notes: list[str] = field(default_factory=list)

    def fault(self, kind: str, times: int = 1) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + times

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k} x{n}" for k, n in sorted(self.faults.items())) or "none"
        out = [
            f"faults injected: {sum(self.faults.values())} ({faults})",
            f"recipients checked: {self.recipients_checked}",
            f"inputs tried: {self.inputs_tried}",
            f"500s seen: {self.server_errors} (must be 0)",
            f"duplicates: {self.duplicates} (must be 0)",
            f"losses: {self.losses} (must be 0)",
        ]
        return out + self.notes


TALLY = Tally()


@pytest.fixture
def recorder() -> Tally:
    """The run's tally: `recorder.fault("kind")`, `recorder.inputs_tried += n`, ..."""
    return TALLY


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not (TALLY.faults or TALLY.recipients_checked or TALLY.inputs_tried or TALLY.notes):
        return
    terminalreporter.write_sep("=", "reliability summary")
    for line in TALLY.lines():
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def _reliability_smtp() -> Iterator[FaultySmtp]:
    server = FaultySmtp()
    yield server
    server.stop()


@pytest.fixture
def smtp_server(_reliability_smtp: FaultySmtp) -> FaultySmtp:
    """A real SMTP server on loopback that keeps the exact bytes of every message it accepted
    (and can refuse, defer or drop: see tests/campaigns/conftest.py)."""
    _reliability_smtp.reset()
    return _reliability_smtp


@pytest.fixture(scope="session")
def own_postgres():
    """A PostgreSQL cluster only these tests use (they restart it), on both suite runs."""
    from tests.reliability.postgres import RestartablePostgres

    cluster = RestartablePostgres()
    yield cluster
    cluster.stop()


def _fleet(database_url, make_app, redis_server, smtp_server, tmp_path):
    """`build(**env)` → (app, Processes, env) on `database_url`, and a `stop()` for them all."""
    from mailer import config
    from tests.campaigns.conftest import FAST_RECOVERY
    from tests.campaigns.processes import Processes
    from tests.conftest import RELAXED_LIMITS

    started: list[Processes] = []

    def build(**overrides: str):
        env = {
            "MAILER_ENV": "test",
            "MAILER_INSTANCE_PATH": str(tmp_path / "instance"),
            "MAILER_SECRET_KEY": "test-secret-key-not-for-production",
            "MAILER_DATABASE_URL": database_url,
            "MAILER_REDIS_URL": redis_server.url,
            "MAILER_SMTP_URL": smtp_server.url,
            "MAILER_BASE_URL": "http://localhost",
            **RELAXED_LIMITS,
            **FAST_RECOVERY,
            **overrides,
        }
        app = make_app(config.load(env))
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        procs = Processes(env, logs)
        started.append(procs)
        return app, procs, env

    def stop() -> None:
        for procs in started:
            procs.stop_all()

    return build, stop


@pytest.fixture
def restart_fleet(own_postgres, make_app, redis_server, smtp_server, tmp_path):
    """`restart_fleet(**env)` → (app, Processes, env): an in-process app and real `mailer`
    processes on the suite's own PostgreSQL cluster, Redis and SMTP server, all with one set of
    settings (fast leases and sweeps, so recovery takes seconds)."""
    own_postgres.empty()
    build, stop = _fleet(own_postgres.url, make_app, redis_server, smtp_server, tmp_path)
    yield build
    stop()


@pytest.fixture
def run_fleet(database_url, make_app, redis_server, smtp_server, tmp_path):
    """`run_fleet(**env)`: as `restart_fleet`, on the run's own database (SQLite or
    PostgreSQL), for tests that do not restart it."""
    build, stop = _fleet(database_url, make_app, redis_server, smtp_server, tmp_path)
    yield build
    stop()
