"""The database down: pages and the API answer 503 with Retry-After and a named error, the log
says what happened without personal data, and the app is back by itself once the database is."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.database import make_engine
from tests.factories import make_form


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(logging.Formatter().format(r) for r in self.records)


def test_a_database_outage_answers_503_with_retry_after(restart_fleet, own_postgres, recorder):
    app, _processes, _env = restart_fleet()
    with app.app_context():
        session = app.extensions["mailer.db"]()
        make_form(session, "news")
        _row, key = create_api_key(session, Role.MARKETER)
        session.close()
    client = app.test_client()
    assert client.get("/subscribe/news").status_code == 200
    bearer = {"Authorization": f"Bearer {key}"}

    logged = _Records()
    web_log = logging.getLogger("mailer.web")
    web_log.addHandler(logged)
    try:
        with own_postgres.down():
            recorder.fault("postgresql stopped")
            page = client.get("/subscribe/news")
            api = client.get("/api/v1/subscribers?email=private.person@example.org", headers=bearer)
            recorder.inputs_tried += 2
    finally:
        web_log.removeHandler(logged)

    assert page.status_code == 503
    assert page.headers["Retry-After"] == "5"
    assert "briefly unavailable" in page.get_data(as_text=True)
    assert api.status_code == 503
    assert api.headers["Retry-After"] == "5"
    assert api.get_json() == {
        "errors": {"request": ["The service is briefly unavailable. Try again in a moment."]}
    }
    messages = "\n".join(r.getMessage() for r in logged.records)
    assert "GET /subscribe/news" in messages and "unavailable" in messages
    assert "private.person@example.org" not in logged.text()  # tracebacks included

    # Back by itself: the pool drops the dead connections (pre-ping) and reconnects.
    assert client.get("/subscribe/news").status_code == 200
    again = client.get("/api/v1/subscribers", headers=bearer)
    assert again.status_code == 200


def test_failed_statements_never_carry_their_parameters_into_errors(settings):
    """Error messages end up in logs; the values bound to a statement are often personal
    (addresses, IPs, names), so the engine leaves them out."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
            conn.execute(
                text("SELECT * FROM no_such_table WHERE email = :email"),
                {"email": "private.person@example.org"},
            )
    finally:
        engine.dispose()
    assert "no_such_table" in str(caught.value)
    assert "private.person@example.org" not in str(caught.value)
