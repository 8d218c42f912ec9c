"""The consent audit export: rows match the ledger for each filter, cells cannot run."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from mailer.compliance import audit_export
from mailer.consent import ledger
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.subscribers.models import Subscriber
from tests.factories import make_form


@pytest.fixture
def ledger_rows(session):
    form = make_form(session, topics=("news", "offers"))
    people = []
    for email in ["ann@example.com", "=1+1@example.com", "bob@example.com"]:
        person = Subscriber(email=email, locale="en", attributes={})
        session.add(person)
        session.flush()
        people.append(person)
    visit = ledger.Visit(ip="192.0.2.1", user_agent='=HYPERLINK("http://evil.example")')
    for person in people:
        ledger.record(
            session,
            ConsentEventType.REQUESTED,
            person,
            ["news"],
            ConsentSource.FORM,
            visit,
            form.current_version,
        )
    ledger.record(session, ConsentEventType.CONFIRMED, people[0], ["news"], ConsentSource.FORM)
    ledger.record(
        session, ConsentEventType.WITHDRAWN, people[2], ["offers"], ConsentSource.UNSUBSCRIBE
    )
    session.commit()
    return session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()


def _export(session, fmt="csv", **kw):
    out = io.StringIO()
    count = audit_export.write(session, audit_export.Filter(**kw), out, fmt)
    return count, out.getvalue()


@pytest.mark.parametrize(
    ("kw", "expect"),
    [
        ({}, lambda e: True),
        ({"types": (ConsentEventType.REQUESTED,)}, lambda e: e.type is ConsentEventType.REQUESTED),
        ({"topic": "offers"}, lambda e: "offers" in e.topics),
        ({"form_id": 1}, lambda e: e.form_id == 1),
        ({"since": utcnow() + timedelta(days=1)}, lambda e: False),
        ({"until": utcnow() + timedelta(days=1)}, lambda e: True),
    ],
)
def test_rows_match_the_ledger_for_each_filter(session, ledger_rows, kw, expect):
    count, text = _export(session, **kw)
    wanted = [e for e in ledger_rows if expect(e)]
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert count == len(parsed) == len(wanted)
    assert [int(r["seq"]) for r in parsed] == [e.seq for e in wanted]
    assert [r["row_hash"] for r in parsed] == [e.row_hash for e in wanted]


def test_columns_are_the_documented_ones_and_jsonl_matches(session, ledger_rows):
    _, text = _export(session)
    header = text.splitlines()[0].split(",")
    assert header == [name for name, _ in audit_export.COLUMNS]
    count, lines = _export(session, fmt="jsonl")
    records = [json.loads(line) for line in lines.splitlines()]
    assert count == len(records) == len(ledger_rows)
    assert records[0]["consent_text_sha256"] == ledger_rows[0].consent_text_sha256


def test_spreadsheet_formulas_are_neutralised(session, ledger_rows):
    _, text = _export(session)
    for row in csv.DictReader(io.StringIO(text)):
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[0]["user_agent"] == '\'=HYPERLINK("http://evil.example")'
    assert parsed[1]["email"] == "'=1+1@example.com"
