"""Test data in bulk: subscribers, subscriptions and a hash-chained consent ledger.

Rows are written straight into the tables (COPY on PostgreSQL, executemany through
SQLAlchemy Core on SQLite, so column types are stored exactly as the models store them):
creating a million subscribers through the API would take hours and measure the wrong thing.
The data is deterministic (seeded) so two runs measure the same question.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource, LedgerHead
from mailer.subscribers.models import Subscriber, Subscription, Topic

FIRST = (
    "Ada",
    "Bjørn",
    "Cecilie",
    "Dag",
    "Eva",
    "Frode",
    "Gro",
    "Hans",
    "Ingrid",
    "Jon",
    "Kari",
    "Lars",
    "Mette",
    "Nils",
    "Olga",
    "Per",
    "Randi",
    "Siv",
    "Tor",
    "Unni",
)
LAST = ("Berg", "Dahl", "Hansen", "Johansen", "Larsen", "Moe", "Nilsen", "Olsen", "Strand", "Vik")
CITIES = (
    "Oslo",
    "Bergen",
    "Trondheim",
    "Stavanger",
    "Tromsø",
    "Aarhus",
    "København",
    "Odense",
    "Drammen",
    "Bodø",
)
PLANS = ("free",) * 6 + ("pro",) * 3 + ("team",)
CONSENT_TEXT_SHA256 = hashlib.sha256(b"Yes, send me the newsletter.").hexdigest()
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/129.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Safari/605.1.15",
)


# --- writing ---------------------------------------------------------------------------------


def _pg_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def bulk_insert(engine: Engine, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    """Insert `rows` (dicts of model values) into `table`; every row has the same keys."""
    count = 0
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return 0
    columns = list(first)
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur:
                cur.execute("SET synchronous_commit = off")  # test data: no need to wait
                names = ", ".join(columns)
                with cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                    for row in _chain_one(first, iterator):
                        copy.write_row([_pg_value(row[c]) for c in columns])
                        count += 1
            raw.commit()
        finally:
            raw.close()
        return count
    with engine.begin() as conn:
        chunk: list[dict[str, Any]] = []
        for row in _chain_one(first, iterator):
            chunk.append(row)
            if len(chunk) >= 20000:
                conn.execute(insert(table), chunk)
                count += len(chunk)
                chunk = []
        if chunk:
            conn.execute(insert(table), chunk)
            count += len(chunk)
    return count


def _chain_one(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


def fix_sequences(engine: Engine, tables: Iterable[str]) -> None:
    """After inserting explicit ids: PostgreSQL's sequences, SQLite's AUTOINCREMENT counters
    (sqlite_sequence) move past them, so later inserts get fresh ids."""
    with engine.begin() as conn:
        for name in tables:
            if engine.dialect.name == "postgresql":
                # Our own table names, never input.
                statement = (
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608
                    f"(SELECT coalesce(max(id), 1) FROM {name}))"
                )
                conn.execute(text(statement))


def analyze(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


# --- subscribers -----------------------------------------------------------------------------


def ensure_topics(engine: Engine, slugs: Iterable[str]) -> dict[str, int]:
    with Session(engine) as session:
        for slug in slugs:
            if session.scalar(select(Topic.id).where(Topic.slug == slug)) is None:
                session.add(Topic(slug=slug, name=slug.title(), description=""))
        session.commit()
        return dict(session.execute(select(Topic.slug, Topic.id)).tuples().all())


def subscribers(
    count: int, now: datetime, *, everyone_active: bool, seed: int = 7
) -> Iterator[dict]:
    """Subscriber rows with ids 1..count. `everyone_active`: a campaign audience (all active,
    all tracked); otherwise a realistic mix for segment counts."""
    rnd = random.Random(seed)
    for i in range(1, count + 1):
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        created = now - timedelta(days=rnd.uniform(1, 1000), seconds=rnd.randrange(86400))
        if everyone_active:
            status = "active"
        else:
            roll = rnd.random()
            status = "active" if roll < 0.9 else "unsubscribed" if roll < 0.95 else "pending"
        opened = rnd.random() < 0.5
        last_open = now - timedelta(days=rnd.uniform(0, 120)) if opened else None
        clicked = opened and rnd.random() < 0.4
        yield {
            "id": i,
            "email": f"{first.lower().replace('ø', 'o')}.{last.lower()}.{i}@example.org",
            "name": f"{first} {last}",
            "locale": rnd.choice(("en", "nb", "da")),
            "attributes": {
                "first_name": first,
                "city": rnd.choice(CITIES),
                "plan": rnd.choice(PLANS),
            },
            "status": status,
            "source_form_id": None,
            "created_at": created,
            "confirmed_at": None if status == "pending" else created + timedelta(minutes=5),
            "unsubscribed_at": now - timedelta(days=1) if status == "unsubscribed" else None,
            "confirmation_sent_at": created,
            "last_open_at": last_open,
            "last_click_at": last_open if clicked else None,
            "open_count": rnd.randrange(1, 30) if opened else 0,
            "machine_open_count": rnd.randrange(0, 5),
            "click_count": rnd.randrange(1, 10) if clicked else 0,
            "bounce_count": 0,
            "tracking_enabled": everyone_active or rnd.random() < 0.97,
        }


def subscriptions(
    count: int, topics: dict[str, int], now: datetime, *, everyone_active: bool, seed: int = 11
) -> Iterator[dict]:
    """Per subscriber: `news` (all active for a campaign audience; else 70% active, 10%
    unsubscribed, 5% pending, 15% none) and, for the mix, `offers` for 40%."""
    rnd = random.Random(seed)
    row_id = 0
    for i in range(1, count + 1):
        wanted = []
        if everyone_active:
            wanted.append(("news", "active"))
        else:
            roll = rnd.random()
            if roll < 0.70:
                wanted.append(("news", "active"))
            elif roll < 0.80:
                wanted.append(("news", "unsubscribed"))
            elif roll < 0.85:
                wanted.append(("news", "pending"))
            if rnd.random() < 0.4:
                wanted.append(("offers", "active"))
        for slug, status in wanted:
            row_id += 1
            moment = now - timedelta(days=rnd.uniform(1, 900))
            yield {
                "id": row_id,
                "subscriber_id": i,
                "topic_id": topics[slug],
                "status": status,
                "created_at": moment,
                "updated_at": moment,
                "confirmed_at": None if status == "pending" else moment,
            }


def load_subscribers(engine: Engine, count: int, *, everyone_active: bool) -> dict[str, int]:
    """Topics `news` and `offers`, `count` subscribers and their subscriptions; returns the
    topic ids. The tables must be empty."""
    now = datetime.now(UTC)
    topics = ensure_topics(engine, ("news", "offers"))
    bulk_insert(
        engine, Subscriber.__table__, subscribers(count, now, everyone_active=everyone_active)
    )
    bulk_insert(
        engine,
        Subscription.__table__,
        subscriptions(count, topics, now, everyone_active=everyone_active),
    )
    fix_sequences(engine, ("subscribers", "subscriptions"))
    analyze(engine)
    return topics


# --- the consent ledger ----------------------------------------------------------------------


def consent_events(count: int, ledger_key: bytes, seed: int = 13) -> Iterator[dict]:
    """`count` chained events (requested, then confirmed, per person), hashed exactly as
    `mailer.consent.chain` hashes them; the last row's hash is the ledger head."""
    rnd = random.Random(seed)
    start = datetime(2023, 1, 1, tzinfo=UTC)

    def mac(value: str) -> str:
        return hmac.new(ledger_key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    ua_macs = {ua: mac(ua) for ua in USER_AGENTS}
    prev = chain.GENESIS
    for seq in range(1, count + 1):
        person = (seq + 1) // 2
        confirmed = seq % 2 == 0
        email = f"person{person}@example.org"
        ip = f"203.0.{(person >> 8) & 255}.{person & 255}"
        ua = USER_AGENTS[person % len(USER_AGENTS)]
        evidence: dict[str, Any] = {"channel": "hosted", "origin": "https://shop.example"}
        if confirmed:
            evidence = {"request_seq": seq - 1, "message_id": f"<c{person}.confirm@shop.example>"}
        event = SimpleNamespace(
            seq=seq,
            occurred_at=start + timedelta(seconds=seq * 20, microseconds=rnd.randrange(10**6)),
            type=ConsentEventType.CONFIRMED if confirmed else ConsentEventType.REQUESTED,
            subscriber_id=person,
            subject_hmac=mac(email),
            topics=["news"] if person % 3 else ["news", "offers"],
            lawful_basis="consent",
            form_id=1,
            form_version_id=1,
            consent_text_sha256=CONSENT_TEXT_SHA256,
            locale=("en", "nb", "da")[person % 3],
            source=ConsentSource.FORM,
            ip_hmac=mac(ip),
            user_agent_hmac=ua_macs[ua],
            evidence=evidence,
            actor=None,
            prev_hash=prev,
        )
        row_hash = chain.row_hash(event)  # type: ignore[arg-type]
        prev = row_hash
        yield {
            "id": seq,
            "seq": seq,
            "occurred_at": event.occurred_at,
            "type": event.type.value,
            "subscriber_id": person,
            "subject_hmac": event.subject_hmac,
            "topics": event.topics,
            "lawful_basis": "consent",
            "form_id": 1,
            "form_version_id": 1,
            "consent_text_sha256": CONSENT_TEXT_SHA256,
            "locale": event.locale,
            "source": event.source.value,
            "ip_hmac": event.ip_hmac,
            "user_agent_hmac": event.user_agent_hmac,
            "evidence": evidence,
            "actor": None,
            "prev_hash": event.prev_hash,
            "row_hash": row_hash,
            "email": email,
            "ip": ip,
            "user_agent": ua,
        }


def load_ledger(engine: Engine, count: int, ledger_key: bytes) -> str:
    """Fill an empty ledger with `count` chained events and move its head; returns the head
    hash. Then checks, through the ORM, that the rows hash as the product hashes them."""
    bulk_insert(engine, ConsentEvent.__table__, consent_events(count, ledger_key))
    with Session(engine) as session:
        last = session.scalar(select(ConsentEvent.row_hash).where(ConsentEvent.seq == count))
        head_exists = session.get(LedgerHead, 1) is not None
        if head_exists:
            session.execute(
                update(LedgerHead).where(LedgerHead.id == 1).values(seq=count, hash=last)
            )
        else:
            session.add(LedgerHead(id=1, seq=count, hash=last))
        session.commit()
        # The first and last rows through the ORM: a row whose hash does not match would
        # make this a benchmark of data the product would call broken.
        for lo, hi in ((1, 1000), (max(1, count - 999), count)):
            rows = session.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.seq.between(lo, hi))
                .order_by(ConsentEvent.seq)
            ).all()
            for event in rows:
                if chain.row_hash(event) != event.row_hash:
                    raise RuntimeError(
                        f"generated consent event {event.seq} does not hash as stored"
                    )
    fix_sequences(engine, ("consent_events",))
    analyze(engine)
    return str(last)
