"""The consent ledger for compliance staff: a streamed audit export with the CLI's columns and
filters, and the chain check, which names the first broken row."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import select, text

from mailer.compliance import audit_export, verification
from mailer.compliance.models import StaffAccess
from mailer.consent import chain, ledger
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.subscribers.models import Subscriber
from tests.factories import make_form

URL = "/api/v1/consent/events"


@pytest.fixture
def ledger_rows(session):
    """Requests on two forms, one confirmation, one withdrawal; one row with a formula."""
    news = make_form(session, topics=("news", "offers"))
    other = make_form(session, slug="other", topics=("other",))
    people = []
    for email in ["ann@example.com", "bob@example.com", "=cmd@example.com"]:
        p = Subscriber(email=email, locale="en", attributes={})
        session.add(p)
        session.flush()
        people.append(p)
    visit = ledger.Visit(ip="192.0.2.1", user_agent='=HYPERLINK("http://evil.example")')
    for p in people:
        ledger.record(
            session,
            ConsentEventType.REQUESTED,
            p,
            ["news"],
            ConsentSource.FORM,
            visit,
            news.current_version,
        )
    ledger.record(
        session,
        ConsentEventType.REQUESTED,
        people[0],
        ["other"],
        ConsentSource.FORM,
        form_version=other.current_version,
    )
    ledger.record(session, ConsentEventType.CONFIRMED, people[0], ["news"], ConsentSource.FORM)
    ledger.record(
        session, ConsentEventType.WITHDRAWN, people[1], ["offers"], ConsentSource.UNSUBSCRIBE
    )
    session.commit()
    return session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()


def export(client, headers, **query):
    response = client.get(URL, query_string=query, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def test_the_csv_export_streams_every_row_with_the_documented_columns(
    client, session, ledger_rows, compliance
):
    response = export(client, compliance)
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="consent-')
    parsed = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert list(parsed[0]) == audit_export.FIELDS
    assert [int(r["seq"]) for r in parsed] == [e.seq for e in ledger_rows]
    assert [r["row_hash"] for r in parsed] == [e.row_hash for e in ledger_rows]
    # What a spreadsheet would run is text.
    assert parsed[2]["email"] == "'=cmd@example.com"
    assert parsed[0]["user_agent"].startswith("'=HYPERLINK")


def test_jsonl_and_filters(client, session, ledger_rows, compliance):
    lines = export(client, compliance, format="jsonl").get_data(as_text=True).splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == [e.seq for e in ledger_rows]
    assert records[2]["email"] == "=cmd@example.com"  # JSON is data, nothing to neutralise

    def seqs(**query):
        body = export(client, compliance, format="jsonl", **query).get_data(as_text=True)
        return [json.loads(line)["seq"] for line in body.splitlines()]

    by = {e.seq: e for e in ledger_rows}
    assert seqs(type="confirmed") == [s for s, e in by.items() if e.type.value == "confirmed"]
    both = seqs(type=["confirmed", "withdrawn"])
    assert both == [s for s, e in by.items() if e.type.value in {"confirmed", "withdrawn"}]
    assert seqs(topic="offers") == [s for s, e in by.items() if "offers" in e.topics]
    other_form = ledger_rows[3].form_id
    assert seqs(form=str(other_form)) == [4]
    assert seqs(since="2999-01-01T00:00:00") == []
    assert seqs(until="2999-01-01T00:00:00+02:00") == list(by)
    assert seqs(since=ledger_rows[0].occurred_at.isoformat()) == list(by)


def test_a_large_export_is_sent_in_chunks(client, session, compliance):
    form = make_form(session)
    person = Subscriber(email="many@example.com", locale="en", attributes={})
    session.add(person)
    session.flush()
    for _ in range(1200):
        ledger.record(
            session,
            ConsentEventType.REQUESTED,
            person,
            ["news"],
            ConsentSource.FORM,
            form_version=form.current_version,
        )
    session.commit()
    response = client.get(URL, headers=compliance)
    assert response.is_streamed
    chunks = [c for c in response.response if c]
    assert len(chunks) == 3  # 500 + 500 + 200 rows: never the whole export at once
    rows = list(csv.DictReader(io.StringIO("".join(c.decode() for c in chunks))))
    assert len(rows) == 1200


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"format": "xlsx"}, "format"),
        ({"type": "bogus"}, "type.0"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"form": "x"}, "form"),
        ({"form": "99999999999999999999"}, "form"),
        ({"topic": "not a slug"}, "topic"),
    ],
)
def test_bad_filters_name_the_field(client, compliance, query, field):
    response = client.get(URL, query_string=query, headers=compliance)
    assert response.status_code == 422
    assert field in response.get_json()["errors"], response.get_json()


def test_the_export_is_on_the_staff_audit_log(client, session, ledger_rows, compliance):
    export(client, compliance, type="confirmed", topic="news", format="jsonl")
    (entry,) = session.scalars(select(StaffAccess)).all()
    assert entry.action == "consent.export" and entry.endpoint == "GET /api/v1/consent/events"
    assert entry.details == {"format": "jsonl", "type": ["confirmed"], "topic": "news"}
    assert entry.subject_hmac is None and entry.api_key_name == "DPO desk"


def test_verify_reports_ok_and_the_anchors(client, session, ledger_rows, compliance):
    chain.record_anchor(session)
    response = client.get("/api/v1/consent/verify", headers=compliance)
    assert response.status_code == 200
    report = response.get_json()
    assert report["ok"] is True and report["problem"] is None
    assert report["checked"] == len(ledger_rows) == report["head_seq"]
    assert report["head_hash"] == ledger_rows[-1].row_hash
    assert report["anchors_checked"] == 1
    (anchor,) = report["anchors"]
    assert anchor["seq"] == len(ledger_rows) and anchor["head_hash"] == report["head_hash"]
    # The run is remembered as one from the admin pages is: who, when, what was found.
    last = verification.last_run(session)
    assert last is not None and last.ok and last.checked == len(ledger_rows)
    assert "DPO desk" in last.by
    (entry,) = session.scalars(select(StaffAccess)).all()
    assert entry.action == "ledger.verify" and entry.endpoint == "GET /api/v1/consent/verify"


def test_verify_names_the_first_altered_row(client, session, db_kind, ledger_rows, compliance):
    target = ledger_rows[2]
    if db_kind == "postgresql":
        session.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        session.execute(text("DROP TRIGGER IF EXISTS consent_events_no_update"))
    session.execute(
        text("UPDATE consent_events SET topics = :t WHERE id = :id"),
        {"t": '["offers"]', "id": target.id},
    )
    session.commit()
    response = client.get("/api/v1/consent/verify", headers=compliance)
    assert response.status_code == 200  # documented: a broken chain is reported, not an error
    report = response.get_json()
    assert report["ok"] is False and report["checked"] == 2
    assert report["problem"] == {
        "seq": target.seq,
        "event_id": target.id,
        "kind": "altered",
        "detail": "content does not match its hash",
    }
