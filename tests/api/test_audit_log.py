"""The staff audit log: every view and export of personal data is on it, admins read it, and
nobody can change or delete a line of it."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from mailer.compliance.models import StaffAccess
from tests.compliance.subjects import EMAIL, subscribed

URL = "/api/v1/audit-log"


@pytest.fixture
def accesses(client, session, work, inbox, compliance, marketer):
    """A subscriber looked at in several ways by two keys."""
    subscribed(client, session, work, inbox)
    assert session.scalar(select(StaffAccess.id)) is None  # a sign-up is no staff access
    (person,) = client.get("/api/v1/subscribers", headers=marketer).get_json()["items"]
    client.get(f"/api/v1/subscribers/{person['id']}", headers=marketer)
    client.get(f"/api/v1/subjects/{EMAIL}/consent", headers=compliance)
    client.get(f"/api/v1/subjects/{EMAIL}/export", headers=compliance)
    client.get("/api/v1/consent/events", query_string={"topic": "news"}, headers=compliance)
    client.get("/api/v1/subscribers", query_string={"email": EMAIL}, headers=compliance)
    return person


def test_admins_read_the_log_newest_first(client, accesses, admin):
    response = client.get(URL, headers=admin)
    assert response.status_code == 200
    log = response.get_json()
    assert log["total"] == 6
    assert [e["action"] for e in log["items"]] == [
        "subscribers.list",
        "consent.export",
        "subject.export",
        "subject.consent",
        "subscriber.view",
        "subscribers.list",
    ]
    newest = log["items"][0]
    assert newest["api_key_name"] == "DPO desk" and newest["api_key_id"]
    assert newest["subject_masked"] == "e***@example.com"
    assert newest["details"] == {"page": 1, "per_page": 50}  # the address is not kept as given
    assert newest["ip"] == "127.0.0.1" and newest["occurred_at"]
    assert log["items"][1]["details"]["topic"] == "news"
    assert log["items"][4]["subscriber_id"] == accesses["id"]

    page2 = client.get(URL, query_string={"per_page": 4, "page": 2}, headers=admin).get_json()
    assert [e["id"] for e in page2["items"]] == [e["id"] for e in log["items"][4:]]


def test_the_log_answers_who_looked_at_one_person(client, accesses, admin):
    about = client.get(URL, query_string={"subject": EMAIL.upper()}, headers=admin).get_json()
    assert about["total"] == 4
    assert {e["action"] for e in about["items"]} == {
        "subscriber.view",
        "subject.consent",
        "subject.export",
        "subscribers.list",
    }
    exports = client.get(URL, query_string={"action": "consent.export"}, headers=admin).get_json()
    assert exports["total"] == 1
    bad = client.get(URL, query_string={"subject": "nope"}, headers=admin)
    assert bad.status_code == 422 and "subject" in bad.get_json()["errors"]


def test_nobody_reads_the_address_from_the_log(client, session, accesses):
    for row in session.scalars(select(StaffAccess)):
        values = [row.api_key_name, row.endpoint, row.subject_masked or "", str(row.details)]
        assert not any(EMAIL in v or "erin.eraseme" in v for v in values)


def test_the_log_is_append_only(client, session, db_kind, accesses):
    statements = ["UPDATE staff_audit_log SET action = 'x'", "DELETE FROM staff_audit_log"]
    if db_kind == "postgresql":
        statements.append("TRUNCATE staff_audit_log")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(statement))
        session.rollback()
    assert session.scalar(select(StaffAccess.action).order_by(StaffAccess.id)) == (
        "subscribers.list"
    )
