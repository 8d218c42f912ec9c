"""Accesses outside the web pages are on record too: each `mailer` command that reads or erases
personal data writes the staff audit log (actor from `--actor`, else the operating-system user,
marked `cli:`), `mailer consent verify` keeps its outcome there as the admin page does, and
retention's erasures are marked as the system acting, not staff."""

from __future__ import annotations

import getpass
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from mailer.cli import cli
from mailer.compliance import retention
from mailer.compliance.models import StaffAccess
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from tests.compliance.subjects import EMAIL, subscribed
from tests.compliance.test_retention import old_signup


@pytest.fixture
def mailer(settings):
    env = {
        "MAILER_ENV": "test",
        "MAILER_INSTANCE_PATH": str(settings.instance_path),
        "MAILER_DATABASE_URL": settings.database_url,
        "MAILER_REDIS_URL": settings.redis_url,
        "MAILER_SECRET_KEY": settings.secret_key,
        "MAILER_SMTP_URL": settings.smtp_url,
    }

    def run(*args: str):
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        return result

    return run


def _records(session) -> list[StaffAccess]:
    session.expire_all()
    return list(session.scalars(select(StaffAccess).order_by(StaffAccess.id)))


def test_each_command_that_reads_or_erases_personal_data_is_on_record(
    client, session, work, inbox, mailer, tmp_path
):
    subscribed(client, session, work, inbox)
    me = f"cli:{getpass.getuser()}"

    out = tmp_path / "audit.csv"
    exported = mailer("consent", "export", "--type", "confirmed", "-o", str(out))
    assert exported.exit_code == 0, exported.output
    document = mailer("subjects", "export", EMAIL.upper())
    assert json.loads(document.stdout)["email"] == EMAIL
    assert mailer("subjects", "receipt", EMAIL).exit_code == 0
    assert mailer("subjects", "export", "not-an-address").exit_code == 2  # nothing recorded
    erased = mailer("subjects", "erase", EMAIL, "--actor", "Dana (DPO)")
    assert erased.exit_code == 0, erased.output

    records = _records(session)
    assert [(r.action, r.api_key_name, r.endpoint) for r in records] == [
        ("consent.export", me, "cli mailer consent export"),
        ("subject.export", me, "cli mailer subjects export"),
        ("subject.receipt", me, "cli mailer subjects receipt"),
        ("subject.erase", "cli:Dana (DPO)", "cli mailer subjects erase"),
    ]
    assert records[0].details["type"] == ["confirmed"] and records[0].subject_hmac is None
    assert {r.subject_masked for r in records[1:]} == {"e***@example.com"}
    assert len({r.subject_hmac for r in records[1:]}) == 1


def test_verify_keeps_its_outcome_where_the_admin_page_reads_it(
    client, session, work, inbox, mailer
):
    subscribed(client, session, work, inbox)
    result = mailer("consent", "verify")
    assert result.exit_code == 0 and "ledger OK: 2 events" in result.output
    [record] = _records(session)
    assert record.action == "ledger.verify" and record.api_key_name.startswith("cli:")
    assert record.details["ok"] is True and record.details["checked"] == 2


def test_retention_erases_as_the_system_not_as_staff(session):
    from tests.factories import make_form

    make_form(session)
    old_signup(session, "stale@example.com", days=45)
    assert retention.purge_pending(session, 30) == 1
    erased = session.scalar(
        select(ConsentEvent).where(ConsentEvent.type == ConsentEventType.ERASED)
    )
    assert erased.source is ConsentSource.SYSTEM and erased.actor == "retention"
