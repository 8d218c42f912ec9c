"""Test fixtures on real parts: Redis, SQLite or PostgreSQL (`--db`), an SMTP sink, RQ.

Each run builds its database with the real migrations (`alembic upgrade head`), once; each
test then starts from empty tables: a fresh copy of the migrated file on SQLite, TRUNCATE on
PostgreSQL.
"""

from __future__ import annotations

import re
import shutil
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from mailer import config, create_app, migrate
from mailer.devmail.catcher import Catcher
from mailer.extensions import jobs
from mailer.models import Base
from tests.inbox import Inbox
from tests.services import PostgresCluster, RedisServer, free_port

# Generous limits so that tests not about rate limiting never hit them.
RELAXED_LIMITS = {
    "MAILER_SIGNUP_RATE_LIMIT": "1000/minute",
    "MAILER_ADDRESS_RATE_LIMIT": "1000/minute",
    "MAILER_RESEND_RATE_LIMIT": "1000/minute",
    "MAILER_LOGIN_RATE_LIMIT": "1000/minute",
    "MAILER_MIN_FILL_SECONDS": "0",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="database to run the suite against",
    )


@pytest.fixture(scope="session")
def db_kind(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--db")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def template_database(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The migrated database every test copies (SQLite) or empties (PostgreSQL)."""
    if db_kind == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "template.db"
        url = f"sqlite:///{path}"
        migrate.upgrade(url)
        yield url
        return
    cluster = PostgresCluster()
    migrate.upgrade(cluster.url)
    yield cluster.url
    cluster.stop()


@pytest.fixture
def database_url(template_database: str, tmp_path: Path) -> str:
    if template_database.startswith("sqlite"):
        copy = tmp_path / "mailer.db"
        shutil.copyfile(template_database[len("sqlite:///") :], copy)
        return f"sqlite:///{copy}"
    engine = create_engine(template_database)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "ledger_head")
    with engine.begin() as conn:
        # A test that leaked a connection must not hang every test after it: end those
        # connections (their tests are over), and never wait long for a lock.
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        conn.execute(text("SET lock_timeout = '20s'"))
        # The append-only triggers stay in force for the app; only this cleanup bypasses them.
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("UPDATE ledger_head SET seq = 0, hash = :genesis"), {"genesis": "0" * 64})
    engine.dispose()
    return template_database


@pytest.fixture(scope="session")
def smtp_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catcher]:
    catcher = Catcher(tmp_path_factory.mktemp("sink") / "maildir", port=free_port())
    catcher.start()
    SMTP_PORTS.add(catcher.port)
    yield catcher
    catcher.stop()


@pytest.fixture
def inbox(smtp_sink: Catcher) -> Inbox:
    box = Inbox(smtp_sink.handler.path)
    box.clear()
    return box


# Ports of SMTP servers this run started; fixtures that start one add its port.
SMTP_PORTS: set[int] = set()


@pytest.fixture(autouse=True)
def _only_our_smtp(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach an SMTP server the suite did not start (indico does the same)."""
    real_connect = smtplib.SMTP.connect

    def guarded(self: smtplib.SMTP, host: str = "localhost", port: int = 0, *a, **kw):
        if host not in {"127.0.0.1", "localhost"} or port not in SMTP_PORTS:
            raise AssertionError(
                f"test tried to reach an SMTP server it did not start: {host}:{port}"
            )
        return real_connect(self, host, port, *a, **kw)

    monkeypatch.setattr(smtplib.SMTP, "connect", guarded)


@pytest.fixture
def make_settings(
    database_url: str, redis_server: RedisServer, smtp_sink: Catcher, tmp_path: Path
) -> Callable[..., config.Settings]:
    def build(**overrides: str) -> config.Settings:
        env = {
            "MAILER_ENV": "test",
            "MAILER_INSTANCE_PATH": str(tmp_path / "instance"),
            "MAILER_SECRET_KEY": "test-secret-key-not-for-production",
            "MAILER_DATABASE_URL": database_url,
            "MAILER_REDIS_URL": redis_server.url,
            "MAILER_SMTP_URL": f"smtp://127.0.0.1:{smtp_sink.port}",
            "MAILER_BASE_URL": "http://localhost",
            **RELAXED_LIMITS,
            **overrides,
        }
        return config.load(env)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., config.Settings]) -> config.Settings:
    return make_settings()


@pytest.fixture
def make_app(redis_server: RedisServer) -> Iterator[Callable[[config.Settings], Flask]]:
    apps: list[Flask] = []

    def build(settings: config.Settings) -> Flask:
        app = create_app(settings)
        app.config["TESTING"] = True
        with app.app_context():
            jobs.redis.flushdb()
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["mailer.db"].kw["bind"].dispose()


@pytest.fixture
def app(make_app: Callable[[config.Settings], Flask], settings: config.Settings) -> Flask:
    return make_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    """A session of the app's own sessionmaker, with no app context left pushed: requests made
    by the test client then get their own context (and `g`), as they do in production."""
    s = app.extensions["mailer.db"]()
    yield s
    s.close()


@pytest.fixture
def work(app: Flask) -> Callable[[], int]:
    """Run the real RQ worker in burst mode until the queue is empty; returns jobs done."""

    def run() -> int:
        with app.app_context():
            before = sum(q.count for q in jobs.queues)
            worker = SimpleWorker(jobs.queues, connection=jobs.redis)
            worker.work(burst=True, with_scheduler=False)
            failed = [j for q in jobs.queues for j in q.failed_job_registry.get_job_ids()]
            assert not failed, f"jobs failed: {failed}"
            return before

    return run


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
STARTED = re.compile(r'name="started" value="([^"]+)"')


def form_tokens(html: str) -> dict[str, str]:
    return {"csrf_token": CSRF.search(html).group(1), "started": STARTED.search(html).group(1)}
