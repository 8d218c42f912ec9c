"""PostgreSQL's COPY export path (`audit_copy`) against the original export, batch by batch.

Batches are rendered one of two ways: whole-batch byte operations, or cell by cell when a
newline sits inside a cell or user text holds the marker byte. Small batch sizes put
every row of the hostile ledger through the path it would take on its own, and put batch
edges everywhere; the bytes must be the original export's in every case.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import func, select, text

from mailer.compliance import audit_copy, audit_export
from mailer.compliance.audit_export import Filter
from mailer.consent.models import ConsentEvent
from tests.compliance.test_audit_export_fast import _filters, _reference, varied_ledger

__all__ = ["varied_ledger"]  # the fixture, used by name


@pytest.fixture(autouse=True)
def _postgresql_only(db_kind):
    if db_kind != "postgresql":
        pytest.skip("the COPY path runs on PostgreSQL only")


def _export_bytes(session, flt: Filter) -> tuple[int, bytes]:
    out = io.BytesIO()
    count = audit_export.write_bytes(session, flt, out, "csv")
    return count, out.getvalue()


@pytest.mark.parametrize("batch", [1, 2, 7, 64])
def test_every_batch_size_writes_the_original_bytes(session, varied_ledger, monkeypatch, batch):
    monkeypatch.setattr(audit_copy, "BATCH", batch)
    for flt in _filters(varied_ledger):
        count, expected = _reference(session, flt, "csv")
        assert _export_bytes(session, flt) == (count, expected.encode("utf-8")), flt


def _add(session, **columns) -> None:
    head = session.scalar(select(func.max(ConsentEvent.seq)))
    values = {
        "seq": head + 1,
        "at": datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),
        "h": f"{head + 1:064x}",
        "topics": '["news"]',
        "evidence": '{"b": 1, "a": 2}',
        "email": None,
        "agent": None,
        "actor": None,
        **columns,
    }
    session.execute(
        text(
            "INSERT INTO consent_events (seq, occurred_at, type, subscriber_id, subject_hmac,"
            " topics, lawful_basis, source, evidence, prev_hash, row_hash, email, user_agent,"
            " actor) VALUES (:seq, :at, 'imported', 1, :h, :topics, 'consent', 'import',"
            " :evidence, :h, :h, :email, :agent, :actor)"
        ),
        values,
    )


@pytest.mark.parametrize("batch", [1, 3, audit_copy.BATCH])
def test_user_text_holding_the_marker_byte_is_written_as_stored(
    session, varied_ledger, monkeypatch, batch
):
    """0x01 marks where topics and evidence are; user text can hold it anywhere, even as a
    field of its own or between commas."""
    _add(session, actor="\x01", email="a,\x01,b@example.com")
    _add(session, agent='say "\x01",\x01,', actor="plain")
    _add(session, email="\x01,", agent="x\x01")
    _add(session, email="whole@example.com", at=datetime(2026, 3, 2, tzinfo=UTC))
    session.commit()
    monkeypatch.setattr(audit_copy, "BATCH", batch)
    flt = Filter(since=datetime(2026, 2, 1, tzinfo=UTC))
    count, expected = _reference(session, flt, "csv")
    assert _export_bytes(session, flt) == (count, expected.encode("utf-8"))
    assert "\x01,b@example.com" in expected and "00:00:00+00:00" in expected


def test_an_error_the_server_sends_during_the_copy_is_raised(session):
    """Rows already read must not pass for the whole result: the export fails instead."""
    connection = session.connection().connection.driver_connection
    statement = "COPY (SELECT 1 / (500 - x) FROM generate_series(1, 1000) AS x) TO STDOUT"
    seen = 0
    with (
        pytest.raises(psycopg.errors.DivisionByZero),
        connection.cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        for _, count in audit_copy.records(connection, copy):
            seen += count
    assert seen < 500
    session.rollback()
    assert session.scalar(text("SELECT 1")) == 1  # the connection is usable again
