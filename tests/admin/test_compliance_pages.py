"""The compliance pages through the real app: the ledger check and anchors, consent audit exports
as background jobs with expiring files, subject requests (proof, receipt, access export,
erasure with confirmation) and the staff audit log. Every view of personal data must land on
the staff audit log."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from mailer import tasks
from mailer.accounts.models import Role
from mailer.compliance import audit_export, export_jobs, verification
from mailer.compliance.models import ExportJob, ExportStatus, StaffAccess
from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType, LedgerAnchor
from mailer.database import utcnow
from mailer.subscribers.models import Subscriber
from tests.admin.conftest import csrf_of
from tests.compliance.subjects import EMAIL, subscribed

BASE = "/admin/compliance"


def _log(session, action: str | None = None) -> list[StaffAccess]:
    session.expire_all()
    query = select(StaffAccess).order_by(StaffAccess.id)
    if action:
        query = query.where(StaffAccess.action == action)
    return list(session.scalars(query))


def _tamper(session, db_kind: str, sql: str) -> None:
    """Change a ledger row behind the triggers' back (as tests/consent/test_chain.py does)."""
    if db_kind == "postgresql":
        session.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        session.execute(text("DROP TRIGGER IF EXISTS consent_events_no_update"))
    session.execute(text(sql))
    session.commit()


# --- the ledger --------------------------------------------------------------------------


def test_verify_reports_intact_then_locates_a_tampered_row(
    client, session, work, inbox, staff_client, db_kind
):
    subscribed(client, session, work, inbox)
    officer = staff_client(Role.COMPLIANCE)
    page = officer.get(f"{BASE}/").get_data(as_text=True)
    assert "has not been checked yet" in page

    token = csrf_of(officer, f"{BASE}/")
    done = officer.post(f"{BASE}/ledger/verify", data={"csrf_token": token})
    assert done.status_code == 302
    page = officer.get(f"{BASE}/").get_data(as_text=True)
    assert ">intact<" in page and "by compliance1@staff.example" in page
    [run] = _log(session, verification.ACTION)
    assert run.details["ok"] is True and run.details["checked"] == 2

    _tamper(session, db_kind, "UPDATE consent_events SET topics = '[\"offers\"]' WHERE seq = 2")
    fragment = officer.post(
        f"{BASE}/ledger/verify", data={"csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    html = fragment.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="ledger-status"')
    assert ">broken<" in html and "altered at seq 2" in html


def test_a_large_ledger_is_checked_by_a_background_job(
    client, session, work, inbox, staff_client, monkeypatch
):
    subscribed(client, session, work, inbox)
    monkeypatch.setattr(verification, "INLINE_LIMIT", 1)  # two events: "large"
    admin = staff_client(Role.ADMIN)
    token = csrf_of(admin, f"{BASE}/")
    started = admin.post(
        f"{BASE}/ledger/verify", data={"csrf_token": token}, headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert "background" in started and 'hx-trigger="every 2s"' in started
    assert _log(session, verification.ACTION) == []

    work()
    polled = admin.get(f"{BASE}/ledger/status").get_data(as_text=True)
    assert "hx-trigger" not in polled  # polling stops with the result
    assert ">intact<" in polled and "by admin1@staff.example" in polled


def test_record_an_anchor_and_print_the_latest(session, staff_client):
    officer = staff_client(Role.COMPLIANCE)
    token = csrf_of(officer, f"{BASE}/")
    assert officer.post(f"{BASE}/ledger/anchor", data={"csrf_token": token}).status_code == 302
    anchor = session.scalar(select(LedgerAnchor))
    assert anchor is not None and anchor.seq == 0
    assert anchor.head_hash in officer.get(f"{BASE}/").get_data(as_text=True)
    printable = officer.get(f"{BASE}/ledger/anchors").get_data(as_text=True)
    assert anchor.head_hash in printable and "data-print" in printable


# --- consent audit exports ---------------------------------------------------------------


def _request_export(staff, data: dict) -> int:
    token = csrf_of(staff, f"{BASE}/exports")
    response = staff.post(f"{BASE}/exports", data={"csrf_token": token, **data})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(response.headers["Location"].rsplit("/", 1)[1])


def test_an_export_runs_in_the_background_and_downloads_once_done(
    app, client, session, work, inbox, staff_client, settings
):
    subscribed(client, session, work, inbox)
    subscribed(client, session, work, inbox, email="other@example.com")
    officer = staff_client(Role.COMPLIANCE)
    export_id = _request_export(officer, {"types": ["confirmed"], "format": "csv"})

    waiting = officer.get(f"{BASE}/exports/{export_id}/progress").get_data(as_text=True)
    assert 'data-status="queued"' in waiting and 'hx-trigger="every 1s"' in waiting
    assert officer.get(f"{BASE}/exports/{export_id}/download").status_code == 404

    work()
    done = officer.get(f"{BASE}/exports/{export_id}/progress").get_data(as_text=True)
    assert 'data-status="done"' in done and "hx-trigger" not in done
    assert re.search(r'<progress value="2" max="2"', done)

    download = officer.get(f"{BASE}/exports/{export_id}/download")
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    assert [r["type"] for r in rows] == ["confirmed", "confirmed"]
    assert {r["email"] for r in rows} == {EMAIL, "other@example.com"}
    expected = list(
        audit_export.rows(session, audit_export.Filter(types=(ConsentEventType.CONFIRMED,)))
    )
    assert [r["row_hash"] for r in rows] == [r["row_hash"] for r in expected]

    export = session.get(ExportJob, export_id)
    # 24 random bytes (secrets.token_urlsafe), nothing derived from the id or the time.
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}\.csv", export.file_name)
    assert (settings.instance_path / "exports" / export.file_name).is_file()
    [asked] = _log(session, "consent.export.request")
    assert asked.details["types"] == ["confirmed"] and asked.details["export_id"] == export_id
    [fetched] = _log(session, "consent.export.download")
    assert fetched.details["rows"] == 2 and fetched.user_id == asked.user_id

    # Marketers may neither see nor download it.
    marketer = staff_client(Role.MARKETER)
    assert marketer.get(f"{BASE}/exports/{export_id}/download").status_code == 403
    assert marketer.get(f"{BASE}/exports").status_code == 403


def test_an_export_with_a_topic_and_date_filter_counts_what_it_writes(
    client, session, work, inbox, staff_client
):
    subscribed(client, session, work, inbox)
    admin = staff_client(Role.ADMIN)
    today = utcnow().date().isoformat()
    export_id = _request_export(
        admin, {"topic": "news", "since": today, "until": today, "format": "jsonl"}
    )
    work()
    download = admin.get(f"{BASE}/exports/{export_id}/download")
    lines = [json.loads(line) for line in download.get_data(as_text=True).splitlines()]
    assert [r["type"] for r in lines] == ["requested", "confirmed"]
    export = session.get(ExportJob, export_id)
    assert export.rows_total == export.rows_done == 2

    nothing = _request_export(admin, {"topic": "news", "types": ["erased"], "format": "jsonl"})
    work()
    session.expire_all()
    empty = session.get(ExportJob, nothing)
    assert empty.status is ExportStatus.DONE and empty.rows_total == 0
    assert admin.get(f"{BASE}/exports/{nothing}/download").get_data(as_text=True) == ""


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"since": "2026-05-02", "until": "2026-05-01"}, "until"),
        ({"since": "yesterday"}, "since"),
        ({"types": ["deleted"]}, "types"),
        ({"format": "xlsx"}, "format"),
        ({"form_id": "999999"}, "form_id"),
    ],
)
def test_bad_export_filters_are_named_and_nothing_is_queued(session, staff_client, data, field):
    officer = staff_client(Role.COMPLIANCE)
    token = csrf_of(officer, f"{BASE}/exports")
    response = officer.post(f"{BASE}/exports", data={"csrf_token": token, **data})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f"<strong>{field}</strong>" in html
    assert session.scalar(select(ExportJob.id)) is None


def test_an_expired_export_is_gone_and_the_purge_is_on_record(
    app, client, session, work, inbox, staff_client, settings
):
    subscribed(client, session, work, inbox)
    officer = staff_client(Role.COMPLIANCE)
    export_id = _request_export(officer, {"format": "csv"})
    work()
    export = session.get(ExportJob, export_id)
    path = settings.instance_path / "exports" / export.file_name
    assert path.is_file() and export.expires_at > utcnow() + timedelta(hours=23)

    session.execute(update(ExportJob).values(expires_at=utcnow() - timedelta(minutes=1)))
    session.commit()
    assert officer.get(f"{BASE}/exports/{export_id}/download").status_code == 410

    with app.app_context():
        tasks.enqueue(tasks.PURGE_EXPORTS)
    work()
    session.expire_all()
    assert not path.exists()
    assert session.get(ExportJob, export_id).status is ExportStatus.EXPIRED
    [purge] = _log(session, export_jobs.PURGE_ACTION)
    assert purge.details["purged"] == 1 and purge.api_key_name == "retention"
    page = officer.get(f"{BASE}/exports/{export_id}").get_data(as_text=True)
    assert "has expired" in page and "/download" not in page


# --- subject requests --------------------------------------------------------------------


def _subject_url(officer, email: str) -> str:
    """Look a person up as the form does: the address goes in the POST body and comes back
    as a sealed reference in the page's URL, never as the address."""
    token = csrf_of(officer, f"{BASE}/subjects")
    found = officer.post(f"{BASE}/subjects", data={"csrf_token": token, "email": email})
    assert found.status_code == 303
    url = found.headers["Location"]
    assert "@" not in url and "%40" not in url and email.split("@")[0].lower() not in url
    return url


def test_addresses_stay_out_of_urls_and_old_links_move_them_out(
    client, session, work, inbox, staff_client
):
    subscribed(client, session, work, inbox)
    officer = staff_client(Role.COMPLIANCE)
    old_link = officer.get(f"{BASE}/subjects", query_string={"email": EMAIL})
    assert old_link.status_code == 303
    url = old_link.headers["Location"]
    assert "@" not in url and "%40" not in url
    html = officer.get(url).get_data(as_text=True)
    links = re.findall(r'href="([^"]+)"', html) + re.findall(r'action="([^"]+)"', html)
    assert any("/receipt" in link for link in links)
    assert not [link for link in links if "@" in link or "%40" in link]


def test_a_forged_or_stale_subject_link_asks_for_a_new_lookup(session, staff_client, app):
    import time

    from mailer.admin.compliance import subject_refs
    from mailer.settings import sealing

    officer = staff_client(Role.COMPLIANCE)
    key = app.config["MAILER"].secret_key
    stale = (
        sealing._fernet(key, subject_refs._SUBJECT_REF)
        .encrypt_at_time(EMAIL.encode(), int(time.time()) - subject_refs.SUBJECT_REF_SECONDS - 60)
        .decode()
    )
    other_purpose = sealing.seal(key, EMAIL.encode())  # sealed for the settings, not here
    for ref in ("garbage", stale, other_purpose):
        for suffix in ("", "/receipt", "/export", "/erase"):
            response = officer.get(f"{BASE}/subjects/{ref}{suffix}")
            assert response.status_code == 302, (ref[:12], suffix)
            assert response.headers["Location"].endswith(f"{BASE}/subjects")
    assert _log(session) == []  # nothing was shown, so nothing to record
    page = officer.get(f"{BASE}/subjects").get_data(as_text=True)
    assert "expired or is not valid" in page


def test_the_subject_page_shows_every_event_and_the_texts_shown(
    client, session, work, inbox, staff_client
):
    subscribed(client, session, work, inbox)
    officer = staff_client(Role.COMPLIANCE)
    response = officer.get(_subject_url(officer, EMAIL.upper()))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    for event in events:
        assert event.row_hash in html
    assert "Yes, email me the newsletter. I can unsubscribe at any time." in html
    assert "ErinBrowser/1.0" in html and "Printable consent receipt" in html
    [viewed] = _log(session, "subject.consent")
    assert viewed.subject_masked == "e***@example.com"
    assert viewed.endpoint == "GET /admin/compliance/subjects/<ref>"


def test_subject_lookups_name_bad_input_and_say_when_nothing_is_held(session, staff_client):
    officer = staff_client(Role.COMPLIANCE)
    assert officer.get(f"{BASE}/subjects").status_code == 200
    token = csrf_of(officer, f"{BASE}/subjects")
    bad = officer.post(f"{BASE}/subjects", data={"csrf_token": token, "email": "not an address"})
    assert bad.status_code == 422 and "not a valid email address" in bad.get_data(as_text=True)
    empty = officer.post(f"{BASE}/subjects", data={"csrf_token": token, "email": " "})
    assert empty.status_code == 422 and "enter the address" in empty.get_data(as_text=True)
    unknown = officer.get(_subject_url(officer, "nobody@example.com"))
    assert unknown.status_code == 404
    assert "Nothing is held about nobody@example.com" in unknown.get_data(as_text=True)
    receipt = officer.get(_subject_url(officer, "nobody@x.org") + "/receipt")
    assert receipt.status_code == 404


def test_the_printable_receipt_carries_the_kantara_fields(
    client, session, work, inbox, staff_client
):
    subscribed(client, session, work, inbox)
    officer = staff_client(Role.COMPLIANCE)
    response = officer.get(_subject_url(officer, EMAIL) + "/receipt")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for field in (
        "consentTimestamp",
        "collectionMethod",
        "consentReceiptID",
        "piiPrincipalId",
        "policyUrl",
        "KI-CR-v1.1.0",
        "Email about News",
        "data-print",
    ):
        assert field in html, field
    assert _log(session, "subject.receipt")[0].subject_masked == "e***@example.com"


def test_the_access_export_downloads_as_zip_and_json(client, session, work, inbox, staff_client):
    subscribed(client, session, work, inbox)
    officer = staff_client(Role.COMPLIANCE)
    url = _subject_url(officer, EMAIL)
    archive = officer.get(f"{url}/export")
    assert archive.status_code == 200 and archive.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.data)) as z:
        profile = list(csv.DictReader(io.StringIO(z.read("profile.csv").decode())))
    assert profile[0]["email"] == EMAIL
    document = officer.get(f"{url}/export", query_string={"format": "json"})
    assert json.loads(document.data)["email"] == EMAIL
    assert [e.details for e in _log(session, "subject.export")] == [
        {"format": "zip"},
        {"format": "json"},
    ]


def test_erasure_needs_the_address_typed_again_and_leaves_only_the_proof(
    client, session, work, inbox, staff_client
):
    subscribed(client, session, work, inbox)
    officer = staff_client(Role.COMPLIANCE)
    url = _subject_url(officer, EMAIL)
    page = officer.get(f"{url}/erase")
    assert page.status_code == 200 and "Type the address again" in page.get_data(as_text=True)
    token = csrf_of(officer, f"{url}/erase")

    wrong = officer.post(
        f"{BASE}/subjects/erase",
        data={"csrf_token": token, "email": EMAIL, "confirm": "someone@example.com"},
    )
    assert wrong.status_code == 422 and "type the same address again" in wrong.get_data(
        as_text=True
    )
    assert session.scalar(select(Subscriber.id).where(Subscriber.email == EMAIL)) is not None

    done = officer.post(
        f"{BASE}/subjects/erase",
        data={"csrf_token": token, "email": EMAIL, "confirm": f" {EMAIL.upper()} "},
    )
    assert done.status_code == 303
    session.expire_all()
    assert session.scalar(select(Subscriber.id).where(Subscriber.email == EMAIL)) is None
    assert chain.verify(session).ok
    erased = session.scalars(select(ConsentEvent).order_by(ConsentEvent.seq)).all()
    assert erased[-1].type is ConsentEventType.ERASED
    assert erased[-1].actor.startswith("user:") and "compliance1@staff.example" in erased[-1].actor

    proof = officer.get(done.headers["Location"]).get_data(as_text=True)
    assert "Erased." in proof and "Erase…" not in proof and "ErinBrowser" not in proof
    assert proof.count('<td class="pii">blanked</td>') == len(erased)
    assert _log(session, "subject.erase")[0].subject_masked == "e***@example.com"

    again = officer.post(
        f"{BASE}/subjects/erase", data={"csrf_token": token, "email": EMAIL, "confirm": EMAIL}
    )
    assert again.status_code == 404


# --- the staff audit log -----------------------------------------------------------------


def test_the_audit_log_is_for_admins_filtered_by_action_and_person(
    client, session, work, inbox, staff_client
):
    subscribed(client, session, work, inbox)
    officer = staff_client(Role.COMPLIANCE)
    url = _subject_url(officer, EMAIL)
    officer.get(url)
    officer.get(_subject_url(officer, "nobody@example.com"))
    officer.get(f"{url}/export")
    assert officer.get(f"{BASE}/audit-log").status_code == 403  # as GET /api/v1/audit-log

    admin = staff_client(Role.ADMIN)
    everything = admin.get(f"{BASE}/audit-log").get_data(as_text=True)
    assert everything.count("compliance1@staff.example") == 3
    by_person = admin.get(f"{BASE}/audit-log", query_string={"subject": EMAIL})
    html = by_person.get_data(as_text=True)
    assert html.count("e***@example.com") == 2 and "n***@example.com" not in html
    assert EMAIL not in html.replace(f'value="{EMAIL}"', "")  # only in the filter box
    by_action = admin.get(f"{BASE}/audit-log", query_string={"action": "subject.export"}).get_data(
        as_text=True
    )
    assert by_action.count("<td>subject.export</td>") == 1
    bad = admin.get(f"{BASE}/audit-log", query_string={"subject": "nope"})
    assert bad.status_code == 422


def test_the_audit_log_pages(session, staff_client):
    from mailer.compliance import staff_log

    for i in range(55):
        staff_log.record(session, staff_log.Staff(api_key_name="cli:ops"), "test.action", f"e{i}")
    admin = staff_client(Role.ADMIN)
    first = admin.get(f"{BASE}/audit-log").get_data(as_text=True)
    assert "Page 1 of 2" in first and first.count("<td>test.action</td>") == 50
    second = admin.get(f"{BASE}/audit-log", query_string={"page": 2}).get_data(as_text=True)
    assert second.count("<td>test.action</td>") == 5 and "<code>e0</code>" in second


def test_hostile_input_gets_a_clear_answer_never_a_500(session, staff_client):
    admin = staff_client(Role.ADMIN)
    token = csrf_of(admin, f"{BASE}/exports")
    answers = {
        "huge id": admin.get(f"{BASE}/exports/99999999999999999999").status_code,
        "huge page": admin.get(f"{BASE}/exports", query_string={"page": 10**30}).status_code,
        "NUL action": admin.get(f"{BASE}/audit-log", query_string={"action": "a\x00b"}).status_code,
        "NUL subject": admin.get(
            f"{BASE}/subjects", query_string={"email": "a\x00@x.org"}
        ).status_code,
        "NUL lookup": admin.post(
            f"{BASE}/subjects", data={"csrf_token": token, "email": "a\x00@x.org"}
        ).status_code,
        "forged link": admin.get(f"{BASE}/subjects/{'x' * 5000}/export").status_code,
        "last day": admin.post(
            f"{BASE}/exports", data={"csrf_token": token, "until": "9999-12-31"}
        ).status_code,
        "erase nobody": admin.post(
            f"{BASE}/subjects/erase",
            data={
                "csrf_token": token,
                "email": "nobody@example.com",
                "confirm": "nobody@example.com",
            },
        ).status_code,
    }
    assert answers == {
        "huge id": 404,
        "huge page": 200,
        "NUL action": 200,
        "NUL subject": 422,
        "NUL lookup": 422,
        "forged link": 302,
        "last day": 422,
        "erase nobody": 404,
    }
