"""Background consent audit exports (`mailer.compliance.export_jobs`) without the pages: the
count a progress bar divides by matches the rows written, reruns and expired exports are left
alone, a failure is recorded for the person waiting, and expired files are purged."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from mailer.compliance import audit_export, export_jobs
from mailer.compliance.models import ExportJob, ExportStatus, StaffAccess
from mailer.consent import ledger
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.subscribers.models import Subscriber, SubscriberStatus

# Slugs where a careless match would confuse one topic with another.
TOPICS = (["news"], ["news_extra"], ["new"], ["news", "offers"], ["a%b"], [])


@pytest.fixture
def events(session):
    """Events of every shape the filters look at, through the real ledger."""
    people = []
    for i, topics in enumerate(TOPICS):
        person = Subscriber(email=f"p{i}@example.com", status=SubscriberStatus.ACTIVE)
        session.add(person)
        session.flush()
        people.append(person)
        kind = ConsentEventType.CONFIRMED if i % 2 else ConsentEventType.REQUESTED
        ledger.record(session, kind, person, topics, ConsentSource.API)
    session.commit()
    return people


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "exports"


def _export(session, flt: audit_export.Filter, fmt: str = "csv") -> ExportJob:
    return export_jobs.request(
        session, flt, fmt, user_id=None, requested_by="ops@example.org", ttl_hours=24
    )


def _run(app, export_id: int, directory) -> bool:
    return export_jobs.run(app.extensions["mailer.db"], export_id, directory, 24)


@pytest.mark.parametrize(
    "flt",
    [
        audit_export.Filter(),
        audit_export.Filter(topic="news"),
        audit_export.Filter(topic="new"),
        audit_export.Filter(topic="news_extra"),
        audit_export.Filter(topic="a%b"),
        audit_export.Filter(types=(ConsentEventType.CONFIRMED,)),
        audit_export.Filter(topic="news", types=(ConsentEventType.REQUESTED,)),
        audit_export.Filter(since=datetime(2999, 1, 1, tzinfo=UTC)),
        audit_export.Filter(form_id=1),
    ],
)
def test_the_count_matches_the_rows_the_export_writes(session, events, flt):
    assert export_jobs.count(session, flt) == len(list(audit_export.rows(session, flt)))


def test_run_writes_the_file_once_and_a_rerun_leaves_it_alone(app, session, events, folder):
    export = _export(session, audit_export.Filter(topic="news"), "jsonl")
    assert _run(app, export.id, folder) is True
    session.expire_all()
    export = session.get(ExportJob, export.id)
    assert export.status is ExportStatus.DONE
    assert export.rows_done == export.rows_total == 2
    path = folder / export.file_name
    written = path.read_text()
    assert len(written.splitlines()) == 2 and export.size_bytes == path.stat().st_size
    assert path.stat().st_mode & 0o777 == 0o600
    assert export.expires_at - export.finished_at == timedelta(hours=24)

    assert _run(app, export.id, folder) is False  # a retried job changes nothing
    assert path.read_text() == written


def test_an_expired_export_is_not_written(app, session, events, folder):
    export = _export(session, audit_export.Filter())
    session.execute(update(ExportJob).values(status=ExportStatus.EXPIRED))
    session.commit()
    assert _run(app, export.id, folder) is False
    assert not folder.exists()


def test_a_failure_is_recorded_for_the_person_waiting(app, session, events, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the exports folder should be")
    export = _export(session, audit_export.Filter())
    assert _run(app, export.id, blocked) is False
    session.expire_all()
    failed = session.get(ExportJob, export.id)
    assert failed.status is ExportStatus.FAILED and failed.finished_at is not None
    assert "FileExistsError" in failed.error or "NotADirectoryError" in failed.error


def test_expired_files_are_purged_and_counted(app, session, events, folder):
    old, fresh = _export(session, audit_export.Filter()), _export(session, audit_export.Filter())
    _run(app, old.id, folder)
    _run(app, fresh.id, folder)
    session.expire_all()
    old, fresh = session.get(ExportJob, old.id), session.get(ExportJob, fresh.id)
    old_file, fresh_file = folder / old.file_name, folder / fresh.file_name

    assert export_jobs.purge_expired(session, folder) == 0
    assert session.scalar(select(StaffAccess.id)) is None  # an empty hourly run is not logged

    later = utcnow() + timedelta(hours=25)
    session.execute(
        update(ExportJob).where(ExportJob.id == fresh.id).values(expires_at=later + timedelta(1))
    )
    session.commit()
    assert export_jobs.purge_expired(session, folder, now=later) == 1
    assert not old_file.exists() and fresh_file.exists()
    session.expire_all()
    gone = session.get(ExportJob, old.id)
    assert gone.status is ExportStatus.EXPIRED and gone.file_name is None
    assert export_jobs.download(gone, folder) is None
    assert export_jobs.download(session.get(ExportJob, fresh.id), folder) is not None
    [logged] = session.scalars(select(StaffAccess)).all()
    assert logged.action == "retention.export_files"
    assert logged.details == {"purged": 1, "export_ids": [old.id]}
    assert export_jobs.purge_expired(session, folder, now=later) == 0  # rerun: nothing more


def test_the_stored_filter_round_trips(session):
    flt = audit_export.Filter(
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime(2026, 2, 1, tzinfo=UTC),
        types=(ConsentEventType.WITHDRAWN, ConsentEventType.ERASED),
        topic="news",
        form_id=3,
    )
    assert export_jobs.filter_from(export_jobs.filters_of(flt)) == flt
    assert export_jobs.filter_from(export_jobs.filters_of(audit_export.Filter())) == (
        audit_export.Filter()
    )


def _peak_while_running(app, session, flt, folder) -> tuple[int, int]:
    export = _export(session, flt)
    tracemalloc.start()
    try:
        assert _run(app, export.id, folder) is True
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    session.expire_all()
    done = session.get(ExportJob, export.id)
    assert done.rows_done == done.rows_total
    return peak, (folder / done.file_name).stat().st_size


def test_the_job_streams_rows_to_the_file_instead_of_holding_them(app, session, folder):
    """Memory stays flat however many rows are exported: four times the rows, four times the
    file, about the same peak of Python allocations (one keyset page, never the result)."""
    rows, small, pad = 32_000, 8_000, "x" * 300
    now = utcnow()
    for start in range(0, rows, 5000):
        session.execute(
            insert(ConsentEvent),
            [
                {
                    "seq": seq,
                    "occurred_at": now,
                    # The first `small` rows are the small export (a type filter, in SQL).
                    "type": ConsentEventType.CONFIRMED
                    if seq <= small
                    else ConsentEventType.REQUESTED,
                    "subscriber_id": seq,
                    "subject_hmac": f"{seq:064x}",
                    "topics": ["news"],
                    "lawful_basis": "consent",
                    "source": ConsentSource.API,
                    "evidence": {"note": pad},
                    "prev_hash": "0" * 64,
                    "row_hash": f"{seq:064x}",
                    "email": f"p{seq}@example.com",
                }
                for seq in range(start + 1, min(start + 5000, rows) + 1)
            ],
        )
        session.commit()
    few = audit_export.Filter(types=(ConsentEventType.CONFIRMED,))
    peak_few, size_few = _peak_while_running(app, session, few, folder)
    peak_all, size_all = _peak_while_running(app, session, audit_export.Filter(), folder)
    assert size_all > 3.5 * size_few
    assert peak_all < 2 * peak_few, f"{peak_few:,} -> {peak_all:,} bytes at peak"
