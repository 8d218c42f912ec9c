"""The consent ledger's hash chain: it verifies after real use, and any tampering is located."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text

from mailer.consent import chain, ledger
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource, LedgerHead
from mailer.extensions import db
from mailer.subscribers.models import Subscriber
from tests import signups
from tests.factories import make_form

ORIGIN = {"Origin": "https://shop.example"}


def _journey(client, session, work, inbox, n=4):
    """A realistic mix: sign-ups, confirmations, preference changes, one-click unsubscribes."""
    from tests.inbox import link

    make_form(session, topics=("news", "offers"))
    for i in range(n):
        client.post(
            "/subscribe/news",
            json={"email": f"p{i}@example.com", "consent": True, "topics": ["news", "offers"]},
            headers=ORIGIN,
        )
    signups.drain(client.application)
    work()
    for i, mail in enumerate(inbox.messages()):
        path = link(mail, "confirm").removeprefix("http://localhost")
        page = client.get(path).get_data(as_text=True)
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        client.post(path, data={"csrf_token": token})
        if i % 2:
            unsubscribe = link(mail, "unsubscribe").removeprefix("http://localhost")
            client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    session.expire_all()


def _tamper(session, db_kind, sql, params):
    """Change a row behind the triggers' back, as an attacker with database access would."""
    if db_kind == "postgresql":
        session.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        session.execute(text("DROP TRIGGER IF EXISTS consent_events_no_update"))
        session.execute(text("DROP TRIGGER IF EXISTS consent_events_no_delete"))
    session.execute(text(sql), params)
    session.commit()
    session.expire_all()


def test_chain_verifies_after_real_use(client, session, work, inbox):
    _journey(client, session, work, inbox)
    events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    types = {e.type for e in events}
    assert types == {
        ConsentEventType.REQUESTED,
        ConsentEventType.CONFIRMED,
        ConsentEventType.WITHDRAWN,
    }
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    report = chain.verify(session, batch=3)  # small batches: the walk crosses batch edges
    assert report.ok, report.problem
    assert report.checked == len(events) and report.head_seq == len(events)
    assert report.head_hash == events[-1].row_hash == session.get(LedgerHead, 1).hash
    # Personal data is in the chain only as keyed HMACs.
    assert all(e.subject_hmac and e.subject_hmac != e.email for e in events)
    assert all(e.email not in chain.content(e).values() for e in events)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("type", "CASE WHEN type = 'withdrawn' THEN 'requested' ELSE 'withdrawn' END"),
        ("occurred_at", "occurred_at"),  # re-written below per database
        ("subject_hmac", "'" + "a" * 64 + "'"),
        ("topics", "'[\"offers\"]'"),
        ("consent_text_sha256", "'" + "b" * 64 + "'"),
        ("source", "'admin'"),
        ("ip_hmac", "NULL"),
        ("evidence", "'{}'"),
        ("lawful_basis", "'legitimate_interest'"),
        ("row_hash", "'" + "c" * 64 + "'"),
    ],
)
def test_altering_any_field_of_any_row_is_found_and_located(
    client, session, work, inbox, db_kind, column, value
):
    _journey(client, session, work, inbox, n=2)
    target = session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq).offset(2)).first()
    if column == "occurred_at":
        value = (
            "occurred_at - interval '1 hour'"
            if db_kind == "postgresql"
            else "'2020-01-01 00:00:00.000000'"
        )
    _tamper(
        session,
        db_kind,
        f"UPDATE consent_events SET {column} = {value} WHERE id = :id",  # noqa: S608
        {"id": target.id},
    )
    report = chain.verify(session)
    assert not report.ok
    assert report.problem.seq == target.seq and report.problem.event_id == target.id
    assert report.problem.kind == "altered"
    assert report.checked == target.seq - 1


def test_a_deleted_row_is_reported_missing(client, session, work, inbox, db_kind):
    _journey(client, session, work, inbox, n=2)
    _tamper(session, db_kind, "DELETE FROM consent_events WHERE seq = 3", {})
    report = chain.verify(session)
    assert report.problem.kind == "missing" and report.problem.seq == 3


def test_deleting_the_newest_rows_is_caught_by_the_head(client, session, work, inbox, db_kind):
    _journey(client, session, work, inbox, n=2)
    last = session.scalar(select(ConsentEvent.seq).order_by(ConsentEvent.seq.desc()).limit(1))
    _tamper(session, db_kind, "DELETE FROM consent_events WHERE seq = :s", {"s": last})
    report = chain.verify(session)
    assert report.problem.kind == "head" and report.problem.seq == last


def test_reordered_rows_are_reported(client, session, work, inbox, db_kind):
    _journey(client, session, work, inbox, n=2)
    _tamper(session, db_kind, "UPDATE consent_events SET seq = -seq WHERE seq IN (2, 3)", {})
    _tamper(
        session,
        db_kind,
        "UPDATE consent_events SET seq = CASE seq WHEN -2 THEN 3 ELSE 2 END WHERE seq < 0",
        {},
    )
    report = chain.verify(session)
    assert report.problem.kind == "reordered" and report.problem.seq == 2


def test_a_rewritten_chain_is_caught_by_its_anchor(client, session, work, inbox, db_kind):
    """An attacker who rewrites a row and re-hashes everything after it: the anchor knows."""
    _journey(client, session, work, inbox, n=2)
    anchor = chain.record_anchor(session)
    assert chain.verify(session).anchors_checked == 1
    events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    prev = events[1].row_hash
    rewritten = []
    for event in events[2:]:
        event.prev_hash = prev
        if event.seq == 3:
            event.topics = ["offers"]
        prev = chain.row_hash(event)
        rewritten.append((event.id, event.topics, event.prev_hash, prev))
    session.rollback()
    if db_kind == "postgresql":
        session.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        session.execute(text("DROP TRIGGER IF EXISTS consent_events_no_update"))
    import json

    for event_id, topics, prev_hash, row_hash in rewritten:
        session.execute(
            text(
                "UPDATE consent_events SET topics = :t, prev_hash = :p, row_hash = :h WHERE id = :i"
            ),
            {"t": json.dumps(topics), "p": prev_hash, "h": row_hash, "i": event_id},
        )
    session.execute(text("UPDATE ledger_head SET hash = :h"), {"h": prev})
    session.commit()
    session.expire_all()
    report = chain.verify(session)
    assert report.problem.kind == "anchor" and report.problem.seq == anchor.seq


def test_erasure_may_blank_personal_data_and_nothing_else(client, session, work, inbox):
    _journey(client, session, work, inbox, n=1)
    row = session.scalar(select(ConsentEvent).where(ConsentEvent.seq == 1))
    from sqlalchemy.exc import DatabaseError

    for bad in (
        "SET email = NULL",
        "SET email = 'x@example.com', ip = NULL, user_agent = NULL",
        "SET email = NULL, ip = NULL, user_agent = NULL, topics = '[]'",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            session.execute(text(f"UPDATE consent_events {bad} WHERE id = :id"), {"id": row.id})
        session.rollback()
    session.execute(
        text("UPDATE consent_events SET email = NULL, ip = NULL, user_agent = NULL WHERE id = :id"),
        {"id": row.id},
    )
    session.commit()
    session.expire_all()
    erased = session.get(ConsentEvent, row.id)
    assert erased.email is None and erased.ip is None and erased.subject_hmac == row.subject_hmac
    assert chain.verify(session).ok


def test_concurrent_appends_keep_one_line(app, session):
    """Eight writers at once: contiguous sequence numbers, every link intact."""
    subscriber = Subscriber(email="many@example.com", locale="en", attributes={})
    session.add(subscriber)
    session.commit()
    errors = []

    def writer(n: int) -> None:
        try:
            with app.app_context(), db.sessionmaker() as own:
                sub = own.get(Subscriber, subscriber.id)
                for _ in range(10):
                    ledger.record(
                        own,
                        ConsentEventType.REQUESTED,
                        sub,
                        [f"t{n}"],
                        ConsentSource.API,
                        ledger.Visit(ip=f"192.0.2.{n}"),
                    )
                    own.commit()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    report = chain.verify(session)
    assert report.ok, report.problem
    assert report.checked == 80


def test_batched_appends_interleave_with_single_ones_in_one_line(app, session):
    """Imports chain a batch under one head lock; writers appending one at a time at the
    same moment still leave one unbroken line, in order."""
    subscriber = Subscriber(email="batch@example.com", locale="en", attributes={})
    session.add(subscriber)
    session.commit()
    errors = []

    def event(n: int) -> ConsentEvent:
        return ConsentEvent(
            type=ConsentEventType.IMPORTED,
            subscriber_id=subscriber.id,
            email=subscriber.email,
            topics=[f"t{n}"],
            lawful_basis="consent",
            source=ConsentSource.IMPORT,
            evidence={"line": n},
        )

    def batcher() -> None:
        try:
            with app.app_context(), db.sessionmaker() as own:
                for start in range(0, 30, 10):
                    chain.append_many(own, [event(n) for n in range(start, start + 10)])
                    own.commit()
        except Exception as exc:
            errors.append(exc)

    def single() -> None:
        try:
            with app.app_context(), db.sessionmaker() as own:
                for n in range(100, 110):
                    chain.append(own, event(n))
                    own.commit()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=batcher), threading.Thread(target=single)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    report = chain.verify(session)
    assert report.ok, report.problem
    assert report.checked == 40
    batched = [
        e.evidence["line"]
        for e in session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq))
        if e.evidence["line"] < 100
    ]
    assert batched == list(range(30))


@pytest.mark.parametrize(
    ("ip", "kept"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"),
        ("not-an-ip", None),
        (None, None),
    ],
)
def test_ip_truncation(ip, kept):
    assert ledger.truncate_ip(ip) == kept


def test_ip_is_recorded_truncated_when_configured(make_settings, make_app):
    app = make_app(make_settings(MAILER_TRUNCATE_IP="1"))
    with app.app_context():
        make_form(db.session)
    response = app.test_client().post(
        "/subscribe/news",
        json={"email": "ann@example.com", "consent": True},
        headers=ORIGIN,
        environ_base={"REMOTE_ADDR": "198.51.100.23"},
    )
    assert response.status_code == 202
    signups.drain(app)
    with app.app_context():
        event = db.session.scalar(select(ConsentEvent))
        assert event.ip == "198.51.100.0"
