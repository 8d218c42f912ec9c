"""The sign-up intake: a sign-up is accepted into Redis by the request and written by the
workers, with the evidence of the moment it was made, once, whatever happens in between."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from mailer import create_app, tasks
from mailer.compliance import erasure
from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.database import utcnow
from mailer.delivery.models import MessageKind, OutboundMessage
from mailer.extensions import jobs
from mailer.subscribers import drain, form_cache, intake
from mailer.subscribers.forms import set_consent_text
from mailer.subscribers.models import Subscriber, SubscriberStatus, SubscriptionStatus
from tests import signups
from tests.factories import make_form
from tests.public.expect import counts
from tests.services import free_port

ORIGIN = {"Origin": "https://shop.example"}
JSON_ANSWER = {"Accept": "application/json"}


def _post(client, email="ann@example.com", headers=None, ip="127.0.0.1", **fields):
    return client.post(
        "/subscribe/news",
        json={"email": email, "consent": True, **fields},
        headers={**ORIGIN, **(headers or {})},
        environ_base={"REMOTE_ADDR": ip},
    )


def _requested(session) -> list[ConsentEvent]:
    session.expire_all()
    return session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.type == ConsentEventType.REQUESTED)
        .order_by(ConsentEvent.seq)
    ).all()


def _messages(session) -> list[OutboundMessage]:
    session.expire_all()
    return session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()


def _drain_jobs(app) -> int:
    with app.app_context():
        return sum(1 for job in jobs.queue.get_jobs() if job.func_name == tasks.DRAIN_SIGNUPS)


def test_an_accepted_sign_up_is_written_by_the_workers_as_it_was_made(
    app, client, session, work, inbox
):
    form = make_form(session)
    before = utcnow()
    response = client.post(
        "/subscribe/news",
        json={"email": "Ann@Example.COM", "name": "Ann", "consent": True},
        headers={**ORIGIN, "User-Agent": "IntakeBrowser/2.0"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    after = utcnow()
    assert response.status_code == 202 and response.get_json() == {"status": "pending"}
    # Accepted into Redis: nothing in the database yet.
    assert counts(session) == (0, 0, 0)
    assert signups.waiting(app) == 1

    assert signups.drain(app) == 1
    assert signups.waiting(app) == 0
    session.expire_all()
    ann = session.scalar(select(Subscriber))
    assert ann.email == "ann@example.com" and ann.name == "Ann"
    assert ann.status is SubscriberStatus.PENDING
    assert [s.status for s in ann.subscriptions] == [SubscriptionStatus.PENDING]
    (requested,) = _requested(session)
    # The request's own time, not the time the worker wrote it.
    assert before <= requested.occurred_at <= after
    assert requested.ip == "203.0.113.9" and requested.user_agent == "IntakeBrowser/2.0"
    assert requested.form_id == form.id
    assert requested.form_version_id == form.current_version.id
    assert requested.consent_text_sha256 == form.current_version.consent_text_sha256
    assert requested.topics == ["news"] and requested.locale == "en"
    assert requested.evidence == {
        "form_slug": "news",
        "form_version": 1,
        "channel": "json",
        "origin": "https://shop.example",
    }
    assert chain.verify(session).ok

    assert inbox.messages() == [], "the worker sends it, not the drain"
    work()
    mail = inbox.only("ann@example.com")
    assert mail["Subject"] == "Please confirm your subscription"
    assert "Ann" in mail.get_body(("plain",)).get_content()


def test_accepting_a_sign_up_runs_no_sql(app, client, session):
    make_form(session)
    engine = app.extensions["mailer.db"].kw["bind"]
    statements: list[str] = []

    def count(_conn, _cursor, sql, *_args) -> None:
        statements.append(sql)

    def run(request):
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            return request()
        finally:
            event.remove(engine, "before_cursor_execute", count)

    assert run(lambda: _post(client, "first@example.com")).status_code == 202
    assert statements, "the first sign-up reads the form from the database"
    assert run(lambda: _post(client, "second@example.com")).status_code == 202
    assert statements == [], "later ones find it in the cache"
    assert signups.drain(app) == 2


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"email": "not an address", "consent": True}, {"email"}),
        ({"email": "ann@example.com"}, {"consent"}),
        ({"email": "ann@example.com", "consent": True, "topics": ["nope"]}, {"topics"}),
        ({"email": "ann@example.com", "consent": True, "form_version": 999}, {"form_version"}),
        ({"consent": False, "name": "Eve\r\nBcc: x@evil.example"}, {"email", "consent", "name"}),
    ],
)
def test_refusals_name_their_fields_and_accept_nothing(app, client, session, body, errors):
    make_form(session)
    assert _post(client).status_code == 202  # the cached form refuses the same way
    response = client.post("/subscribe/news", json=body, headers=ORIGIN)
    assert response.status_code == 400
    assert set(response.get_json()["errors"]) == errors
    assert signups.waiting(app) == 1


def test_a_multi_topic_form_refuses_a_sign_up_without_a_topic(app, client, session):
    make_form(session, topics=("news", "offers"))
    response = _post(client)
    assert response.get_json() == {"errors": {"topics": ["Choose at least one topic."]}}
    unknown = _post(client, topics=["news", "gossip"])
    assert unknown.get_json() == {"errors": {"topics": ["Unknown topic: gossip"]}}
    assert signups.waiting(app) == 0


def test_a_drain_that_died_between_commit_and_ack_writes_nothing_twice(
    app, client, session, work, inbox
):
    class Died(Exception):
        pass

    make_form(session)
    assert _post(client).status_code == 202
    connection = app.extensions["mailer.redis"]
    doomed = app.extensions["mailer.db"]()

    def die(_session) -> None:
        raise Died  # the process is gone the moment its transaction committed

    event.listen(doomed, "after_commit", die)
    with pytest.raises(Died):
        drain.drain(doomed, connection, window_seconds=600, domain="localhost", consumer="doomed")
    doomed.close()
    assert len(_requested(session)) == 1 and len(_messages(session)) == 1
    assert signups.waiting(app) == 1, "written, but not acknowledged"

    # The next run takes the entry over, finds it written, and only acknowledges it.
    again = drain.drain(
        session, connection, window_seconds=600, domain="localhost", reclaim_idle_ms=0
    )
    assert (again.reclaimed, again.duplicates, again.written) == (1, 1, 0)
    assert signups.waiting(app) == 0
    assert len(_requested(session)) == 1 and len(_messages(session)) == 1
    work()
    assert len(inbox.messages("ann@example.com")) == 1
    assert chain.verify(session).ok


def test_two_requests_for_one_address_in_one_batch_mail_once(app, client, session, work, inbox):
    make_form(session)
    for n in range(2):
        assert _post(client, ip=f"10.0.2.{n}").status_code == 202
    assert signups.waiting(app) == 2
    assert signups.drain(app) == 2
    # As two requests one after the other: both recorded, the first mailed, the second's
    # confirmation waiting for the end of the address's window.
    assert len(_requested(session)) == 2
    first, deferred = _messages(session)
    assert first.kind is deferred.kind is MessageKind.CONFIRMATION
    assert first.send_after is None
    assert deferred.send_after - first.created_at >= timedelta(seconds=590)
    work()
    assert len(inbox.messages()) == 1


def test_a_changed_form_is_used_at_once_by_every_process(app, client, session):
    form = make_form(session)
    assert _post(client, "before@example.com").status_code == 202  # cached with version 1
    with app.app_context():
        generation = int(jobs.redis.get(form_cache.GENERATION))
    v2 = set_consent_text(session, form, "A new text, shown from now on.")
    session.commit()
    with app.app_context():
        assert int(jobs.redis.get(form_cache.GENERATION)) > generation
    assert _post(client, "after@example.com").status_code == 202

    # An origin added to the form is allowed at once too.
    elsewhere = {"Origin": "https://blog.example"}
    assert _post(client, "blog@example.com", headers=elsewhere).status_code == 403
    form.allowed_origins = [*form.allowed_origins, "https://blog.example"]
    session.commit()
    assert _post(client, "blog@example.com", headers=elsewhere).status_code == 202

    assert signups.drain(app) == 3
    versions = {e.email: e.form_version_id for e in _requested(session)}
    assert versions == {
        "before@example.com": form.versions[0].id,
        "after@example.com": v2.id,
        "blog@example.com": v2.id,
    }


def test_the_request_kicks_at_most_one_drain_per_window(app, client, session, work, inbox):
    make_form(session)
    began = time.monotonic()
    for n in range(6):
        assert _post(client, f"p{n}@example.com").status_code == 202
    windows = (time.monotonic() - began) * 1000 / intake.KICK_MS + 1
    kicked = _drain_jobs(app)
    assert 1 <= kicked <= windows
    # The drain it kicked writes everything waiting, and the emails go out.
    work()
    assert signups.waiting(app) == 0
    assert len(_requested(session)) == 6 and len(inbox.messages()) == 6

    time.sleep(intake.KICK_MS / 1000 + 0.1)  # the window is over: the next one kicks again
    assert _post(client, "late@example.com").status_code == 202
    assert _drain_jobs(app) == 1
    work()
    assert len(inbox.messages("late@example.com")) == 1


def test_an_unreadable_entry_is_dropped_without_holding_up_the_rest(app, client, session):
    make_form(session)
    with app.app_context():
        jobs.redis.xadd(intake.STREAM, {"v": "1", "f": "not a number"})
        jobs.redis.xadd(intake.STREAM, {"v": "99"})
    assert _post(client).status_code == 202
    logger = logging.getLogger("mailer.subscribers.drain")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        assert signups.drain(app) == 1
    finally:
        logger.removeHandler(handler)
    assert signups.waiting(app) == 0
    assert len(_requested(session)) == 1
    logged = [r.getMessage() for r in records]
    assert len(logged) == 2 and all("dropped" in m for m in logged), logged
    assert not any("ann@example.com" in m for m in logged)


def test_a_sign_up_erased_before_it_was_written_stays_erased(app, client, session, work):
    make_form(session)
    assert _post(client).status_code == 202
    signups.drain(app)
    assert _post(client, ip="10.0.3.1").status_code == 202  # asked again ...
    erasure.erase(session, "ann@example.com", actor="dpo@example.org")  # ... then erased
    assert signups.drain(app) == 0
    assert signups.waiting(app) == 0
    session.expire_all()
    assert session.scalar(select(Subscriber)) is None
    assert [e.email for e in _requested(session)] == [None], "only the erased first request"
    assert chain.verify(session).ok


def test_with_redis_down_a_sign_up_is_written_at_once(make_settings, session):
    app = create_app(make_settings(MAILER_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    app.config["TESTING"] = True
    try:
        make_form(session)
        response = app.test_client().post(
            "/subscribe/news", json={"email": "ann@example.com", "consent": True}, headers=ORIGIN
        )
        assert response.status_code == 202
        (requested,) = _requested(session)
        assert requested.intake_id is None
        (message,) = _messages(session)
        assert message.kind is MessageKind.CONFIRMATION
    finally:
        app.extensions["mailer.db"].kw["bind"].dispose()
