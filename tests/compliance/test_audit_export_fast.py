"""The fast consent audit export writes the very bytes the original ORM export wrote.

`_reference_write` below is the export as it was before it was made fast (ORM objects per
row, `csv.DictWriter`, `_cell` per value), kept word for word as the oracle. The ledger is
built through the real ledger and erasure services, plus rows chained directly for the
shapes a form cannot produce (nested and unicode evidence, hostile actors and locales,
whole seconds). Every filter is compared, in CSV and JSON Lines, as text and as bytes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from mailer.compliance import audit_export, erasure
from mailer.compliance.audit_export import FIELDS, FORMULA_START, Filter
from mailer.consent import chain, ledger
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.pseudonyms import keyed
from mailer.subscribers.models import Subscriber
from tests.factories import make_form

# --- the reference: the export before it was made fast, unchanged ---------------------------


def _reference_rows(session: Session, flt: Filter, batch: int = 5000) -> Iterator[dict[str, Any]]:
    query = select(ConsentEvent).order_by(ConsentEvent.seq).limit(batch)
    if flt.since:
        query = query.where(ConsentEvent.occurred_at >= flt.since)
    if flt.until:
        query = query.where(ConsentEvent.occurred_at < flt.until)
    if flt.types:
        query = query.where(ConsentEvent.type.in_(flt.types))
    if flt.form_id is not None:
        query = query.where(ConsentEvent.form_id == flt.form_id)
    last = 0
    while True:
        page = session.scalars(query.where(ConsentEvent.seq > last)).all()
        if not page:
            return
        for event in page:
            if flt.topic is None or flt.topic in event.topics:
                yield _reference_row(event)
        last = page[-1].seq
        session.expunge_all()


def _reference_row(event: ConsentEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(),
        "type": event.type.value,
        "subject_hmac": event.subject_hmac,
        "email": event.email,
        "topics": " ".join(event.topics),
        "lawful_basis": event.lawful_basis,
        "source": event.source.value,
        "form_id": event.form_id,
        "form_version_id": event.form_version_id,
        "consent_text_sha256": event.consent_text_sha256,
        "locale": event.locale,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "evidence": json.dumps(event.evidence, sort_keys=True, ensure_ascii=False),
        "actor": event.actor,
        "row_hash": event.row_hash,
    }


def _reference_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _reference_write(session: Session, flt: Filter, out: IO[str], fmt: str) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
    for row in _reference_rows(session, flt):
        if fmt == "csv":
            writer.writerow({k: _reference_cell(v) for k, v in row.items()})
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


# --- a ledger of every shape ------------------------------------------------------------------

HOSTILE = ["=cmd|' /C calc'!A0", "+1", "-2", "@x", "\tx", "\rx", "", "plain"]
AGENTS = [
    'Mozilla/5.0 (X11; "quoted", comma)',
    "line one\nline two\r\nline three",
    '=HYPERLINK("http://evil.example")',
    "Smörgåsbord ✓ 日本語 🙂",
    "trailing backslash \\",
    "",
]
EVIDENCE: list[dict[str, Any]] = [
    {},
    {"origin": "https://shop.example", "channel": "hosted"},
    {"zeta": 1, "alpha": "ä", "Beta": None, "_x": True, "é": False, "ab": 2.5, "a": -0.0001},
    {"statement": 'Tick to hear from us; "news" only,\nweekly', "tab": "a\tb", "nul": "\x01"},
    {"nested": {"b": [1, 2, {"d": "ü", "c": []}], "a": {}}, "list": ["x", "=y", 1e100]},
    {"big": 12345678901234567890, "float": 0.1, "emoji": "🙂", "rtl": "שלום", "ls": "a\u2028b"},
    {"=formula": "+1", "-": "@", 'quote"key': "back\\slash"},
]


def _person(session: Session, email: str, locale: str | None = "en") -> Subscriber:
    person = Subscriber(email=email, locale=locale, attributes={})
    session.add(person)
    session.flush()
    return person


@pytest.fixture
def varied_ledger(session):
    """About two hundred events: signups through forms, imports, withdrawals, erasures."""
    news = make_form(session, topics=("news", "offers"))
    other = make_form(session, slug="events", topics=("events",))
    base = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    people = []
    for i in range(40):
        email = f"{HOSTILE[i % len(HOSTILE)]}person{i}@example.com"
        people.append(_person(session, email, locale=("en", "nb", "=da", None)[i % 4]))
    for i, person in enumerate(people):
        form = news if i % 3 else other
        visit = ledger.Visit(
            ip=("192.0.2.1", "2001:db8::", "-3.3.3.3", None)[i % 4],
            user_agent=AGENTS[i % len(AGENTS)] or None,
            locale=("nb", None)[i % 2],
        )
        topics = [["news"], ["offers", "news"], ["events"], []][i % 4]
        ledger.record(
            session,
            ConsentEventType.REQUESTED,
            person,
            topics,
            ConsentSource.FORM,
            visit,
            form.current_version,
            evidence=EVIDENCE[i % len(EVIDENCE)],
        )
        if i % 2:
            ledger.record(
                session, ConsentEventType.CONFIRMED, person, topics, ConsentSource.FORM, visit
            )
    # Rows a form cannot produce: chained directly, with fixed times (whole seconds too).
    for i in range(60):
        person = people[i % len(people)]
        event = ConsentEvent(
            type=(ConsentEventType.IMPORTED, ConsentEventType.WITHDRAWN)[i % 2],
            subscriber_id=person.id,
            subject_hmac=keyed(session, person.email),
            email=person.email if i % 5 else None,
            topics=[["news"], ["news", "offers"], [], ["events", "news"]][i % 4],
            lawful_basis=("consent", "legal_claims", "+x")[i % 3],
            form_id=news.id if i % 4 == 0 else None,
            form_version_id=news.current_version.id if i % 4 == 0 else None,
            consent_text_sha256=news.current_version.consent_text_sha256 if i % 4 == 0 else None,
            locale=(HOSTILE[i % len(HOSTILE)][:8] or None) if i % 3 == 0 else "da",
            source=list(ConsentSource)[i % len(ConsentSource)],
            ip=("10.0.0.0", "@1", None)[i % 3],
            user_agent=AGENTS[i % len(AGENTS)],
            evidence=EVIDENCE[(i + 3) % len(EVIDENCE)],
            actor=(None, "admin@example.org", "=cmd", '-minus, "quoted"')[i % 4],
            occurred_at=base + timedelta(days=i, microseconds=(0, 1, 999_999, 120_000)[i % 4]),
        )
        chain.append(session, event)
    session.commit()
    for person in (people[1], people[7], people[15], people[23]):  # valid addresses
        erasure.erase(session, person.email, "dpo@example.org")
    return {"news": news.id, "other": other.id, "base": base}


def _filters(ids: dict[str, Any]) -> list[Filter]:
    base = ids["base"]
    return [
        Filter(),
        Filter(since=base + timedelta(days=10)),
        Filter(until=base + timedelta(days=20, microseconds=1)),
        Filter(since=base + timedelta(days=5), until=base + timedelta(days=30)),
        Filter(types=(ConsentEventType.REQUESTED,)),
        Filter(types=(ConsentEventType.WITHDRAWN, ConsentEventType.ERASED)),
        Filter(topic="news"),
        Filter(topic="offers"),
        Filter(topic="new"),
        Filter(topic="nothing"),
        Filter(form_id=ids["news"]),
        Filter(form_id=ids["other"], types=(ConsentEventType.REQUESTED,)),
        Filter(topic="news", types=(ConsentEventType.IMPORTED,), since=base),
        Filter(since=datetime(2999, 1, 1, tzinfo=UTC)),
    ]


def _reference(session: Session, flt: Filter, fmt: str) -> tuple[int, str]:
    out = io.StringIO(newline="")
    count = _reference_write(session, flt, out, fmt)
    session.expunge_all()
    return count, out.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_export_equals_the_original_for_every_filter(session, varied_ledger, fmt):
    total = 0
    for flt in _filters(varied_ledger):
        count, expected = _reference(session, flt, fmt)
        out = io.StringIO(newline="")
        assert audit_export.write(session, flt, out, fmt) == count, flt
        assert out.getvalue() == expected, flt
        total += count
    assert total > 300  # the filters did select rows


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_byte_export_equals_the_original_encoded(session, varied_ledger, fmt):
    for flt in _filters(varied_ledger)[:8]:
        count, expected = _reference(session, flt, fmt)
        out = io.BytesIO()
        assert audit_export.write_bytes(session, flt, out, fmt) == count, flt
        assert out.getvalue() == expected.encode("utf-8"), flt


def test_the_ledger_has_the_hostile_shapes(session, varied_ledger):
    """Guards the comparison above: the oracle's output really holds what could go wrong."""
    _, text = _reference(session, Filter(), "csv")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert any(r["email"] == "" for r in rows)  # erased
    assert any(r["email"].startswith("'=") for r in rows)
    assert any("\n" in r["user_agent"] for r in rows)
    assert any(
        '"nested": {"a": {}, "b": [1, 2, {"c": [], "d": "ü"}]}' in r["evidence"] for r in rows
    )
    assert any(r["actor"] == "'=cmd" for r in rows)
    assert any(r["occurred_at"].endswith(":00+00:00") for r in rows)  # whole seconds


def test_rows_yields_the_original_dicts(session, varied_ledger):
    expected = list(_reference_rows(session, Filter(topic="news")))
    session.expunge_all()
    assert list(audit_export.rows(session, Filter(topic="news"))) == expected


def _progress_calls(session: Session, fmt: str, every: int) -> tuple[int, list[int]]:
    seen: list[int] = []
    count = audit_export.write_bytes(session, Filter(), io.BytesIO(), fmt, seen.append, every)
    return count, seen


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_progress_is_reported_and_can_stop_the_export(session, varied_ledger, fmt):
    count, seen = _progress_calls(session, fmt, every=50)
    assert seen and seen == sorted(seen) and seen[-1] <= count
    assert all(b - a <= 50 for a, b in zip([0, *seen], seen, strict=False))

    class Stop(Exception):
        pass

    def stop(rows: int) -> None:
        raise Stop(rows)

    out = io.BytesIO()
    with pytest.raises(Stop):
        audit_export.write_bytes(session, Filter(), out, fmt, stop, every=50)
    assert 0 < out.getvalue().count(b"\n") < count


def test_an_unknown_format_is_refused(session):
    with pytest.raises(ValueError, match="csv or jsonl"):
        audit_export.write(session, Filter(), io.StringIO(), "xml")


def test_rows_stored_in_other_shapes_are_exported_as_the_original_reads_them(
    session, varied_ledger, db_kind
):
    """Rows written by something other than the ORM (a restore, a hand repair): a timestamp
    without microseconds in SQLite's text, JSON with other spacing, key order and escapes."""
    head = session.scalar(select(func.max(ConsentEvent.seq)))
    stamp = "2026-03-01 12:00:00" if db_kind == "sqlite" else "2026-03-01 12:00:00+00"
    shapes = [
        (stamp, '["news","offers"]', '{ "b":1,"a":[1, {"z": "\\u00e9", "y": null}] }'),
        (stamp, '[ "news" ]', '{"\\u00e9": "\\ud83d\\ude42", "e": "x\\n,y"}'),
        (stamp, "[]", "[1, 2]"),
        (stamp, '["-x"]', '"-1"'),
    ]
    for offset, (occurred_at, topics, evidence) in enumerate(shapes, 1):
        session.execute(
            text(
                "INSERT INTO consent_events (seq, occurred_at, type, subscriber_id, subject_hmac,"
                " topics, lawful_basis, source, evidence, prev_hash, row_hash, email, user_agent)"
                " VALUES (:seq, :at, 'imported', 1, :h, :topics, 'consent', 'import', :evidence,"
                " :h, :h, :email, :agent)"
            ),
            {
                "seq": head + offset,
                "at": occurred_at,
                "h": f"{offset:064x}",
                "topics": topics,
                "evidence": evidence,
                "email": "x\x01y@example.com" if offset % 2 else None,
                "agent": "a\x02b" if offset == 2 else "",
            },
        )
    session.commit()
    flt = Filter(since=datetime(2026, 2, 1, tzinfo=UTC), until=datetime(2026, 3, 2, tzinfo=UTC))
    for fmt in ("csv", "jsonl"):
        count, expected = _reference(session, flt, fmt)
        out = io.StringIO(newline="")
        assert audit_export.write(session, flt, out, fmt) == count
        assert out.getvalue() == expected
    assert count >= len(shapes)


def test_the_export_leaves_the_callers_transaction_settings_as_they_were(
    session, varied_ledger, db_kind
):
    """PostgreSQL: parallel workers are off while the COPY runs, then back as they were."""
    if db_kind != "postgresql":
        pytest.skip("a PostgreSQL setting")
    session.execute(text("SET LOCAL max_parallel_workers_per_gather = 3"))
    audit_export.write_bytes(session, Filter(), io.BytesIO(), "csv")
    assert session.scalar(text("SHOW max_parallel_workers_per_gather")) == "3"
