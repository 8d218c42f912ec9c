"""Erasure and a new sign-up for the same address at the same moment, on the real database:
whichever wins, no personal data is left behind. Either the erasure came last (nothing of the
address anywhere) or the sign-up did (a fresh, pending profile whose only clear data is that
new request; everything before the erasure stays pseudonymised). The subscriber lock
(`mailer.subscribers.status.lock`) orders them on PostgreSQL, the write lock on SQLite."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from mailer.compliance import erasure
from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.extensions import db
from mailer.pseudonyms import keyed
from mailer.subscribers.models import Subscriber, SubscriberStatus
from tests import signups
from tests.compliance import history
from tests.compliance.test_erasure_trace import textual_values
from tests.factories import make_form

# The sign-up starts this much after the erasure, to vary the interleaving (from both inside
# each other's transaction to one after the other); the invariant is the same for all.
STAGGER = (0.0, 0.0, 0.005, 0.02, 0.05, 0.3)


def _race(app, email: str, stagger: float) -> dict[str, object]:
    outcome: dict[str, object] = {}
    start = threading.Barrier(2)

    def erase() -> None:
        with app.app_context(), db.sessionmaker() as session:
            start.wait()
            try:
                erasure.erase(session, email, actor="dpo@example.org")
                outcome["erase"] = "erased"
            except erasure.NothingToErase:
                outcome["erase"] = "nothing"
            except Exception as exc:  # reported by the assertion below, with its type
                outcome["erase"] = repr(exc)

    def sign_up() -> None:
        # Accepted into the intake first; the race is with the worker that writes it.
        response = app.test_client().post(
            "/subscribe/news",
            json={"email": email, "consent": True, "name": "Racing Person"},
            headers={**history.ORIGIN, **history.PERSON},
            environ_base=history.PERSON_ENV,
        )
        start.wait()
        time.sleep(stagger)
        try:
            signups.drain(app)  # writes it, or drops it if the erasure came after it
            outcome["signup"] = response.status_code if signups.waiting(app) == 0 else "waiting"
        except Exception as exc:  # reported by the assertion below, with its type
            outcome["signup"] = type(exc).__name__

    threads = [threading.Thread(target=erase), threading.Thread(target=sign_up)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcome


def _check(session, email: str) -> str:
    """The invariant; returns which side ended up last."""
    session.expire_all()
    events = session.scalars(
        select(ConsentEvent)
        .where(ConsentEvent.subject_hmac == keyed(session, email))
        .order_by(ConsentEvent.seq)
    ).all()
    erased = [e.seq for e in events if e.type is ConsentEventType.ERASED]
    clear = [e for e in events if e.email or e.ip or e.user_agent]
    profile = session.scalar(select(Subscriber).where(Subscriber.email == email))
    local = email.partition("@")[0]
    if profile is None:
        assert clear == [], "clear personal data in the ledger without a profile"
        assert erased, "no profile, yet no erasure on record"
        left = [(t, c) for t, c, v in textual_values(session) if local in v.lower()]
        assert left == [], f"{email} left in {left}"
        return "erasure last"
    # A fresh start after the erasure: pending, and only the new request in clear.
    assert erased, "the erasure neither happened nor said there was nothing"
    assert profile.status is SubscriberStatus.PENDING
    assert [e.type for e in clear] == [ConsentEventType.REQUESTED]
    assert all(e.seq > erased[-1] for e in clear)
    return "sign-up last"


def test_erasure_and_sign_up_at_once_leave_nothing_behind(app, client, session, work, inbox):
    make_form(session)
    for n, stagger in enumerate(STAGGER):
        email = f"racer{n}@example.com"
        history.sign_up(client, work, email, "Racing Person")
        history.confirm(client, work, inbox, email)
        outcome = _race(app, email, stagger)
        assert outcome.get("erase") == "erased", outcome
        # A sign-up that found the profile just before the erasure deleted it starts afresh
        # (new profile, fresh consent): the person's request is never lost.
        assert outcome.get("signup") == 202, outcome
        _check(session, email)
        report = chain.verify(session)
        assert report.ok, report.problem
