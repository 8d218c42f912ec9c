"""Engine, sessions and the declarative base, independent of Flask.

Services take a `Session` and own its transaction; the web layer and the workers only
decide where a session comes from.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, String, TypeDecorator, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on both databases (SQLite drops tzinfo; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StrEnum(TypeDecorator):
    """An `enum.Enum` stored as its string value (no database enum type to migrate)."""

    impl = String(32)
    cache_ok = True

    def __init__(self, enum_cls: type[enum.Enum], length: int = 32) -> None:
        super().__init__(length)
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return self.enum_cls(value).value

    def process_result_value(self, value: str | None, dialect: Any) -> enum.Enum | None:
        return None if value is None else self.enum_cls(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    else:
        engine = create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True
        )
    # RQ forks a work horse per job: a forked child must not reuse the parent's sockets.
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    return engine


def make_sessionmaker(engine: Engine, info: dict[str, Any] | None = None) -> sessionmaker[Session]:
    """`info` is copied into every session: how the ledger key reaches services without Flask."""
    factory = sessionmaker(bind=engine, expire_on_commit=False, info=info or {})
    event.listen(factory, "after_commit", _run_after_commit)
    event.listen(factory, "after_rollback", _drop_after_commit)
    return factory


def after_commit(session: Session, callback: Callable[[], Any]) -> None:
    """Run `callback` once the session's current transaction has committed (never on rollback).

    This is how jobs get enqueued: a worker must never look for a row that is not committed.
    """
    session.info.setdefault("after_commit", []).append(callback)


def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop("after_commit", [])
    for callback in callbacks:
        callback()


def _drop_after_commit(session: Session) -> None:
    session.info.pop("after_commit", None)
