"""Erasure reaches campaigns, tracking and bounces: afterwards no column of any table holds
the address, its local part, the name, the browser or the IP; the proof still verifies."""

from __future__ import annotations

from sqlalchemy import JSON, MetaData, String, Table, Text, delete, func, inspect, select
from sqlalchemy.orm import Session

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.campaigns.models import Delivery
from mailer.compliance import erasure
from mailer.compliance.models import StaffAccess
from mailer.consent import chain
from mailer.subscribers.models import Subscriber
from mailer.tracking.models import Bounce, TrackingEvent
from tests.compliance import history
from tests.compliance.history import AGENT, EMAIL, IP, LOCAL, NAME

NEEDLES = (EMAIL, LOCAL, NAME.lower(), "eraseme", IP, AGENT.lower())


def textual_values(session: Session) -> list[tuple[str, str, str]]:
    """(table, column, value) for every text, varchar and JSON column of every table, found
    by reflecting the live schema (so a table no model knows about is searched too)."""
    engine = session.get_bind()
    schema = inspect(engine)
    found = []
    for name in schema.get_table_names():
        table = Table(name, MetaData(), autoload_with=engine)
        columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
        if not columns:
            continue
        for row in session.execute(select(*columns)):
            for column, value in zip(columns, row, strict=True):
                if value is not None:
                    found.append((name, column.name, str(value)))
    return found


def traces(session: Session) -> list[tuple[str, str, str]]:
    session.expire_all()
    return [
        (table, column, value)
        for table, column, value in textual_values(session)
        if any(needle in value.lower() for needle in NEEDLES)
    ]


def _staff(session) -> dict[str, str]:
    _, secret = create_api_key(session, Role.COMPLIANCE, "DPO desk")
    return {"Authorization": f"Bearer {secret}"}


def test_the_search_sees_every_kind_of_column(app, client, session, work, inbox):
    history.build(app, client, session, work, inbox, _staff(session))
    places = {(t, c) for t, c, _ in traces(session)}
    # The history really spread the person over the tables erasure must reach.
    assert {
        ("subscribers", "email"),
        ("subscribers", "name"),
        ("consent_events", "ip"),
        ("consent_events", "user_agent"),
        ("deliveries", "error"),
        ("bounces", "diagnostic"),
        ("tracking_events", "user_agent"),
    } <= places


def test_erasure_leaves_no_trace(app, client, session, work, inbox):
    story = history.build(app, client, session, work, inbox, _staff(session))
    assert session.scalar(select(func.count()).select_from(TrackingEvent)) == 2

    erasure.erase(session, EMAIL, actor="dpo@example.org")

    assert traces(session) == []
    # Deliveries stay for the campaigns' counts, with no link to the person (FK SET NULL).
    deliveries = session.scalars(select(Delivery).order_by(Delivery.id)).all()
    assert [d.id for d in deliveries] == [story.delivered_id, story.refused_id]
    assert {d.subscriber_id for d in deliveries} == {None}
    assert "<erased>" in deliveries[1].error and "5.2.2" in deliveries[1].error
    assert session.scalar(select(func.count()).select_from(TrackingEvent)) == 0
    (bounce,) = session.scalars(select(Bounce)).all()
    assert bounce.email_hmac and bounce.status == "4.2.2"
    assert bounce.diagnostic == "452 4.2.2 mailbox <erased> full (<erased>)"
    # The staff who looked keep their record, pseudonymous: the HMAC and a masked address.
    looked = session.scalars(select(StaffAccess)).all()
    assert looked and all(row.subject_masked == "e***@example.com" for row in looked)
    report = chain.verify(session)
    assert report.ok, report.problem


def test_the_foreign_keys_do_their_part_on_their_own(app, client, session, work, inbox):
    """Deleting the profile row alone (SQLite with foreign_keys on, and PostgreSQL) sets the
    deliveries' subscriber to NULL and takes the tracking events."""
    story = history.build(app, client, session, work, inbox, _staff(session))
    session.execute(delete(Subscriber).where(Subscriber.id == story.subscriber_id))
    session.commit()
    assert session.scalar(select(func.count()).select_from(TrackingEvent)) == 0
    assert set(session.scalars(select(Delivery.subscriber_id))) == {None}
