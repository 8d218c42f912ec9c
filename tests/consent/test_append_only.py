"""The database itself refuses to change or delete consent events (both databases)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from mailer.consent import ledger
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.subscribers.models import Subscriber


@pytest.fixture
def event(session) -> int:
    ann = Subscriber(email="ann@example.com", name="Ann", locale="en", attributes={})
    session.add(ann)
    session.flush()
    row = ledger.record(
        session,
        ConsentEventType.REQUESTED,
        ann,
        ["news"],
        ConsentSource.FORM,
        ledger.Visit(ip="192.0.2.1", user_agent="UA"),
    )
    session.commit()
    return row.id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE consent_events SET email = 'mallory@example.com' WHERE id = :id",
        "UPDATE consent_events SET type = 'confirmed' WHERE id = :id",
        "DELETE FROM consent_events WHERE id = :id",
    ],
)
def test_database_refuses_changes(session, event, statement):
    with pytest.raises(DatabaseError, match="append-only"):
        session.execute(text(statement), {"id": event})
        session.commit()
    session.rollback()
    row = session.get(ConsentEvent, event)
    assert row.email == "ann@example.com" and row.type is ConsentEventType.REQUESTED


def test_orm_update_is_refused_too(session, event):
    row = session.get(ConsentEvent, event)
    row.ip = None
    with pytest.raises(DatabaseError, match="append-only"):
        session.commit()
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 1
    assert session.get(ConsentEvent, event).ip == "192.0.2.1"


def test_truncate_is_refused_on_postgresql(session, event, db_kind):
    if db_kind != "postgresql":
        pytest.skip("SQLite has no TRUNCATE; DELETE is covered above")
    with pytest.raises(DatabaseError, match="append-only"):
        session.execute(text("TRUNCATE consent_events"))
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 1


def test_consent_texts_can_be_neither_changed_nor_deleted(session):
    from tests.factories import make_form

    form = make_form(session)
    version = form.current_version.id
    for statement in (
        "UPDATE form_versions SET consent_text = 'edited' WHERE id = :id",
        "DELETE FROM form_versions WHERE id = :id",
    ):
        with pytest.raises(DatabaseError, match="form_versions is append-only"):
            session.execute(text(statement), {"id": version})
            session.commit()
        session.rollback()
    with pytest.raises(DatabaseError):  # a form whose text was shown cannot go either
        session.execute(text("DELETE FROM forms WHERE id = :id"), {"id": form.id})
        session.commit()
    session.rollback()
