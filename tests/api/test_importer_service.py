"""The import service on its own (no Flask): chunks, duplicates and mixed rows keep the file's
order, every address gets one consent event and at most one email."""

from __future__ import annotations

import io

from sqlalchemy import func, select

from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.subscribers import importer
from mailer.subscribers.models import Subscriber, SubscriberStatus
from tests.factories import make_form


def test_chunks_duplicates_and_mixed_rows(session, work, inbox):
    form = make_form(session)
    proof = '2026-03-01,"Yes, email me"'
    text = (
        "email,consent_at,consent_text\n"
        f"a@example.com,{proof}\n"
        "b@example.com,,\n"
        f"A@example.com,{proof}\n"  # the same person: unchanged
        f"c@example.com,{proof}\n"
        "b@example.com,,\n"  # asked already: no second email
        f"d@example.com,{proof}\n"
    )
    options = importer.ImportOptions(form_id=form.id, topic="news", chunk_size=2, actor="test")
    report = importer.run(session, io.BytesIO(text.encode()), options)
    assert (report.created_active, report.created_pending, report.unchanged) == (3, 1, 2)
    assert report.rows == 6 and report.errors == [] and report.skipped == 0

    statuses = dict(session.execute(select(Subscriber.email, Subscriber.status)).all())
    assert statuses == {
        "a@example.com": SubscriberStatus.ACTIVE,
        "b@example.com": SubscriberStatus.PENDING,
        "c@example.com": SubscriberStatus.ACTIVE,
        "d@example.com": SubscriberStatus.ACTIVE,
    }
    types = session.execute(
        select(ConsentEvent.type, func.count()).group_by(ConsentEvent.type)
    ).all()
    assert dict(types) == {ConsentEventType.IMPORTED: 3, ConsentEventType.REQUESTED: 1}
    assert chain.verify(session).ok
    work()
    assert len(inbox.messages()) == 1 and len(inbox.messages("b@example.com")) == 1


def test_a_rerun_is_safe(session, work, inbox):
    form = make_form(session)
    text = b"email,topics\nx@example.com,news\ny@example.com,news\n"
    options = importer.ImportOptions(form_id=form.id)
    first = importer.run(session, io.BytesIO(text), options)
    second = importer.run(session, io.BytesIO(text), options)
    assert (first.created_pending, second.unchanged, second.created_pending) == (2, 2, 0)
    work()
    assert len(inbox.messages()) == 2
