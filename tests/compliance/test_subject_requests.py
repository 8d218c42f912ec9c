"""The erasure route the issue names (DELETE /api/v1/subjects/<email>) and the access export
as JSON and as a ZIP of CSVs, over the API and the CLI, with the whole history of a person."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile

from sqlalchemy import select

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.compliance import access, access_zip
from mailer.compliance.models import StaffAccess
from mailer.consent import chain
from mailer.subscribers.models import Subscriber
from tests.compliance import history
from tests.compliance.history import AGENT, EMAIL, IP, NAME

BASE = "/api/v1/subjects"


def _key(session, role: Role = Role.COMPLIANCE) -> dict[str, str]:
    _, secret = create_api_key(session, role, f"{role.value} desk")
    return {"Authorization": f"Bearer {secret}"}


def _held(session) -> bool:
    session.expire_all()
    return session.scalar(select(Subscriber.id).where(Subscriber.email == EMAIL)) is not None


def test_delete_erases_once_the_address_is_confirmed(app, client, session, work, inbox):
    staff = _key(session)
    history.build(app, client, session, work, inbox, staff)
    url = f"{BASE}/{EMAIL}"
    for body in (None, {}, {"confirm": "someone@example.com"}, {"confirm": "no"}):
        refused = client.delete(url, json=body, headers=staff)
        assert refused.status_code == 422, body
        assert list(refused.get_json()["errors"]) == ["confirm"]
    assert _held(session)

    marketer = client.delete(url, json={"confirm": EMAIL}, headers=_key(session, Role.MARKETER))
    assert marketer.status_code == 403 and _held(session)

    done = client.delete(url, json={"confirm": EMAIL.upper()}, headers=staff)
    assert done.status_code == 200
    assert done.get_json()["withdrawn"] == ["news"]
    assert not _held(session)
    assert chain.verify(session).ok
    logged = session.scalars(select(StaffAccess).order_by(StaffAccess.id)).all()
    assert [(e.action, e.endpoint) for e in logged][-1] == (
        "subject.erase",
        "DELETE /api/v1/subjects/<email>",
    )

    again = client.delete(url, json={"confirm": EMAIL}, headers=staff)
    assert again.status_code == 404
    assert again.get_json() == {"errors": {"email": ["nothing is held about this address"]}}


def test_delete_of_an_address_never_seen_is_a_404_and_on_the_log(client, session):
    staff = _key(session)
    response = client.delete(
        f"{BASE}/nobody@example.com", json={"confirm": "nobody@example.com"}, headers=staff
    )
    assert response.status_code == 404
    assert "email" in response.get_json()["errors"]
    (entry,) = session.scalars(select(StaffAccess)).all()
    assert entry.action == "subject.erase" and entry.subject_masked == "n***@example.com"
    bad = client.delete(f"{BASE}/not-an-address", json={"confirm": "x"}, headers=staff)
    assert bad.status_code == 400 or bad.status_code == 422
    assert "email" in bad.get_json()["errors"]


def test_the_json_export_holds_deliveries_opens_clicks_and_bounces(
    app, client, session, work, inbox
):
    staff = _key(session)
    story = history.build(app, client, session, work, inbox, staff)
    document = client.get(f"{BASE}/{EMAIL}/export", headers=staff).get_json()
    assert [d["delivery_id"] for d in document["deliveries"]] == [
        story.delivered_id,
        story.refused_id,
    ]
    assert document["deliveries"][0]["subject"] == "May from The Paper"
    assert document["deliveries"][0]["opened_at"] and document["deliveries"][0]["clicked_at"]
    assert EMAIL in document["deliveries"][1]["error"]  # theirs: shown to them, unscrubbed
    assert [o["user_agent"] for o in document["opens"]] == [AGENT]
    assert [(c["url"], c["link_index"]) for c in document["clicks"]] == [
        ("https://shop.example/sale", 0)
    ]
    (bounce,) = document["bounces"]
    assert (bounce["kind"], bounce["status"], bounce["delivery_id"]) == (
        "soft",
        "4.2.2",
        story.delivered_id,
    )
    assert [e["ip"] for e in document["consent_events"]] == [IP, IP]


def _csvs(data: bytes) -> dict[str, list[dict[str, str]]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {
            name.removesuffix(".csv"): list(
                csv.DictReader(io.StringIO(archive.read(name).decode("utf-8")))
            )
            for name in archive.namelist()
        }


def test_the_zip_export_has_one_csv_per_section_matching_the_json(
    app, client, session, work, inbox
):
    staff = _key(session)
    history.build(app, client, session, work, inbox, staff)
    session.execute(
        Subscriber.__table__.update()
        .where(Subscriber.email == EMAIL)
        .values(attributes={"city": '=HYPERLINK("http://evil.example")', "tags": ["a", "b"]})
    )
    session.commit()
    response = client.get(f"{BASE}/{EMAIL}/export?format=zip", headers=staff)
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"] == 'attachment; filename="subject-export.zip"'
    tables = _csvs(response.data)
    assert set(tables) == set(access_zip.SECTIONS)
    assert {"profile", "attributes", "subscriptions", "consent_events", "deliveries"} <= set(
        tables
    ) and {"opens", "clicks", "bounces"} <= set(tables)

    document = access.export(session, EMAIL)
    for section in access_zip.SECTIONS:
        assert len(tables[section]) == len(access_zip.section_rows(document, section)), section
    (profile,) = tables["profile"]
    assert (profile["email"], profile["name"], profile["open_count"]) == (EMAIL, NAME, "1")
    assert {a["name"]: a["value"] for a in tables["attributes"]} == {
        "city": '\'=HYPERLINK("http://evil.example")',  # shown as text, never run
        "tags": '["a", "b"]',
    }
    assert [e["type"] for e in tables["consent_events"]] == ["requested", "confirmed"]
    assert tables["clicks"][0]["url"] == "https://shop.example/sale"
    assert tables["opens"][0]["user_agent"] == AGENT
    assert tables["bounces"][0]["status"] == "4.2.2"
    logged = session.scalars(select(StaffAccess).order_by(StaffAccess.id)).all()
    assert logged[-1].action == "subject.export" and logged[-1].details == {"format": "zip"}


def test_an_unknown_format_names_the_parameter(client, session):
    response = client.get(f"{BASE}/{EMAIL}/export?format=xlsx", headers=_key(session))
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["format"]


def test_the_cli_writes_the_zip_to_a_file(app, client, session, work, inbox, settings, tmp_path):
    history.build(app, client, session, work, inbox, _key(session))
    env = {
        **os.environ,
        "MAILER_INSTANCE_PATH": str(settings.instance_path),
        "MAILER_DATABASE_URL": settings.database_url,
        "MAILER_REDIS_URL": settings.redis_url,
        "MAILER_SECRET_KEY": settings.secret_key,
        "MAILER_SMTP_URL": settings.smtp_url,
    }

    def mailer(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "mailer.cli", "subjects", "export", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    target = tmp_path / "erin.zip"
    done = mailer(EMAIL, "--format", "zip", "-o", str(target))
    assert done.returncode == 0, done.stderr
    tables = _csvs(target.read_bytes())
    assert tables["profile"][0]["email"] == EMAIL and len(tables["deliveries"]) == 2

    no_file = mailer(EMAIL, "--format", "zip")
    assert no_file.returncode != 0 and "--output" in no_file.stderr
    missing = mailer("nobody@example.com", "--format", "zip", "-o", str(tmp_path / "n.zip"))
    assert missing.returncode == 1 and not (tmp_path / "n.zip").exists()
