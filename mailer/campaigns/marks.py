"""The sender's per-message write: one durable statement, one round trip.

Before each message goes on the wire its delivery must be committed as `sending`, and the
previous message's outcome must be written too. In the common case (the previous message was
accepted) both changes go into ONE `UPDATE ... SET x = CASE ...` over the two rows, run on a
connection of its own in autocommit mode: one statement is one transaction, so the sender pays
one round trip and one commit (one WAL flush) per message instead of BEGIN, two UPDATEs,
COMMIT and a pool checkout with its ping. Nothing is batched across recipients: each mark is
durable before its SMTP transaction starts, exactly as with two statements in one transaction.

Every change is fenced like the rest of the sender's writes: a row changes only while it still
carries the sender's claim token and is in the expected state (`pending` for the mark,
`sending` for the outcome). RETURNING tells whether the mark took.

Who commits: each call is its own committed transaction. Rerunning a call is harmless (the
fences make the second run change nothing). Other outcomes (refusals, retries, unknown) are
rare and written by the sender through its session, see `outcomes.write`.
"""

from __future__ import annotations

import contextlib
import secrets
import select
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Update, and_, bindparam, case, or_, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import BindParameter

from mailer.campaigns.models import Delivery, DeliveryStatus

NO_ROW = -1  # an id no delivery has: "nothing to mark" / "no outcome to write"


def _statement() -> Update:
    """The UPDATE ... RETURNING, built once per process. Every value is a named bind parameter
    of a plain type (statuses as their stored strings), so the same parameters serve
    SQLAlchemy and, on PostgreSQL, the driver's cursor."""
    table = Delivery.__table__
    c = table.c
    mark, sent = bindparam("mark_id", type_=Integer), bindparam("sent_id", type_=Integer)
    is_mark = c.id == mark
    now = bindparam("now", type_=c.claimed_at.type)

    def status(name: str) -> BindParameter:
        return bindparam(name, type_=String)

    return (
        update(table)
        .where(
            c.claim == bindparam("token", type_=String),
            c.id.in_([mark, sent]),
            or_(
                and_(is_mark, c.status == status("pending")),
                and_(c.id == sent, c.status == status("sending")),
            ),
        )
        .values(
            status=case((is_mark, status("sending")), else_=status("sent")),
            claimed_at=case((is_mark, now), else_=c.claimed_at),
            attempts=case(
                (is_mark, c.attempts + bindparam("one", type_=Integer)), else_=c.attempts
            ),
            sent_at=case((is_mark, c.sent_at), else_=now),
            error=case((is_mark, c.error), else_=None),
        )
        .returning(c.id)
    )


_STEP = _statement()
_CONSTANTS = {
    "pending": DeliveryStatus.PENDING.value,
    "sending": DeliveryStatus.SENDING.value,
    "sent": DeliveryStatus.SENT.value,
    "one": 1,
}


class _Libpq:
    """The statement prepared once on the sender's PostgreSQL connection and run through
    libpq (psycopg's `pgconn`), parameters as text: SQLAlchemy's per-execution work costs
    three times the round trip's client CPU, psycopg's cursor about twice. `send` returns as
    soon as the statement is on its way, so the sender can render the next message while
    PostgreSQL executes and commits; `result` then waits for the answer."""

    def __init__(self, connection: Connection) -> None:
        from psycopg import pq
        from sqlalchemy.dialects.postgresql import psycopg as dialect

        compiled = _STEP.compile(dialect=dialect.dialect(paramstyle="numeric_dollar"))
        self.order = list(compiled.positiontup or ())
        self.pgconn = connection.connection.driver_connection.pgconn
        self.ok = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
        self.name = b"mailer_mark_" + secrets.token_hex(6).encode()
        self.busy = False
        self._checked(self.pgconn.prepare(self.name, str(compiled).encode(), None))

    def _checked(self, result: Any) -> Any:
        if result.status not in self.ok:
            from psycopg import errors

            raise errors.error_from_result(result)
        return result

    def send(self, params: dict[str, Any]) -> None:
        pgconn = self.pgconn
        pgconn.send_query_prepared(self.name, [_text(params[name]) for name in self.order])
        self.busy = True
        while pgconn.flush():  # psycopg's connections are non-blocking: 1 = more to write
            select.select([], [pgconn.socket], [])

    def result(self) -> list[int]:
        pgconn = self.pgconn
        while pgconn.is_busy():
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
        result = pgconn.get_result()
        while pgconn.get_result() is not None:  # libpq ends a statement's results with None
            pass
        self.busy = False
        result = self._checked(result)
        return [int(result.get_value(row, 0)) for row in range(result.ntuples)]

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the connection may be gone already
            if self.busy:  # a statement interrupted by an exception: let it finish
                self.result()
            self.pgconn.exec_(b"DEALLOCATE " + self.name)


def _text(value: object) -> bytes:
    """A parameter in PostgreSQL's text format (ids, strings, aware datetimes)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.isoformat().encode()
    return str(value).encode()


class Marks:
    """One autocommit connection of the sender's own, for the per-message statement.

    On PostgreSQL with psycopg the statement runs through libpq (`_Libpq`) and `send` does
    not wait for it; elsewhere (SQLite) it runs through SQLAlchemy Core, and `send` runs it
    to the end. Either way `result` tells whether the mark took: no byte of the message may
    go out before it has returned True."""

    def __init__(self, engine: Engine) -> None:
        self.connection: Connection = engine.connect().execution_options(
            isolation_level="AUTOCOMMIT"
        )
        self._libpq: _Libpq | None = None
        if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
            self._libpq = _Libpq(self.connection)
        self._mark_id: int | None = None
        self._ids: list[int] = []

    def close(self) -> None:
        if self._libpq is not None:
            self._libpq.close()
        self.connection.close()

    def send(self, claim: str, now: datetime, sent_id: int | None, mark_id: int | None) -> None:
        """Start recording `sent_id` as sent and marking `mark_id` as sending, in one
        statement that commits on its own. Either may be None. Call `result` next."""
        params = {
            **_CONSTANTS,
            "token": claim,
            "now": now,
            "sent_id": NO_ROW if sent_id is None else sent_id,
            "mark_id": NO_ROW if mark_id is None else mark_id,
        }
        self._mark_id = mark_id
        if self._libpq is not None:
            self._libpq.send(params)
        else:
            self._ids = [row[0] for row in self.connection.execute(_STEP, params)]

    def result(self) -> bool:
        """Wait for the statement `send` started (it is then committed). True if `mark_id`
        is now `sending` under our claim."""
        ids = self._libpq.result() if self._libpq is not None else self._ids
        return self._mark_id is not None and self._mark_id in ids

    def step(self, claim: str, now: datetime, sent_id: int | None, mark_id: int | None) -> bool:
        """`send`, then `result`."""
        self.send(claim, now, sent_id, mark_id)
        return self.result()
