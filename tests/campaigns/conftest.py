"""Campaign fixtures: an audience, a template, a campaign, a marketer's key, and an SMTP server
on loopback that can refuse, defer, slow down or drop, and remembers what it accepted."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.orm import Session

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.campaigns.models import Campaign, Template
from mailer.database import utcnow
from mailer.subscribers import forms
from mailer.subscribers.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Topic,
)
from tests.conftest import SMTP_PORTS
from tests.services import free_port

MJML = """<mjml>
  <mj-head><mj-title>{{ campaign.subject }}</mj-title></mj-head>
  <mj-body>
    <mj-section>
      <mj-column>
        <mj-text>Hello {{ subscriber.first_name | default("there") }},</mj-text>
        <mj-text>Our autumn offer is here.</mj-text>
        <mj-button href="https://shop.example/offer?src=mail">See the offer</mj-button>
        <mj-text>
          <a href="{{ unsubscribe_url }}">Unsubscribe</a> ·
          <a href="{{ preferences_url }}">Preferences</a>
        </mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
"""


@dataclass
class Received:
    at: float
    rcpt: str
    data: bytes

    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.data)


@dataclass
class SmtpBehaviour:
    """What the server answers. `rcpt(addr)` → None (accept) or an SMTP reply line."""

    rcpt: Callable[[str], str | None] = lambda addr: None
    # Seconds to wait before answering DATA (a slow server makes a send last long enough
    # to be interrupted).
    data_delay: float = 0.0
    # Drop the connection instead of answering DATA (after reading the whole message).
    drop_after_data: Callable[[str], bool] = lambda addr: False
    # Announce ESMTP PIPELINING (RFC 2920), as Postfix and most servers do: the sender then
    # writes MAIL, RCPT and DATA at once. Off: one command at a time.
    pipelining: bool = True


@dataclass
class _Handler:
    behaviour: SmtpBehaviour
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Messages between their DATA and the server's answer, now and at most so far: how many
    # transactions clients ran side by side.
    in_data: int = 0
    peak_in_data: int = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses) -> list[str]:
        session.host_name = hostname
        if self.behaviour.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        reply = self.behaviour.rcpt(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.in_data += 1  # the server's event loop is one thread
        self.peak_in_data = max(self.peak_in_data, self.in_data)
        try:
            if self.behaviour.data_delay:
                await asyncio.sleep(self.behaviour.data_delay)
        finally:
            self.in_data -= 1
        rcpt = envelope.rcpt_tos[0]
        if self.behaviour.drop_after_data(rcpt):
            server.transport.close()
            return "421 closing"  # never reaches the client
        content = envelope.original_content or envelope.content
        with self.lock:
            self.received.append(Received(time.time(), rcpt, bytes(content)))
        return "250 Message accepted"


class FaultySmtp:
    def __init__(self) -> None:
        self.behaviour = SmtpBehaviour()
        self.handler = _Handler(self.behaviour)
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True
        )
        self.controller.start()
        SMTP_PORTS.add(self.port)

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=10"

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def peak_side_by_side(self) -> int:
        return self.handler.peak_in_data

    def reset(self) -> None:
        with self.handler.lock:
            self.handler.received.clear()
        self.handler.peak_in_data = 0
        self.behaviour.rcpt = lambda addr: None
        self.behaviour.data_delay = 0.0
        self.behaviour.drop_after_data = lambda addr: False
        self.behaviour.pipelining = True

    def by_recipient(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.received:
            counts[r.rcpt] = counts.get(r.rcpt, 0) + 1
        return counts

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture(scope="session")
def _faulty_smtp() -> Iterator[FaultySmtp]:
    server = FaultySmtp()
    yield server
    server.stop()


@pytest.fixture
def faulty_smtp(_faulty_smtp: FaultySmtp) -> FaultySmtp:
    _faulty_smtp.reset()
    return _faulty_smtp


@pytest.fixture
def campaign_settings(make_settings, faulty_smtp: FaultySmtp):
    def build(**overrides: str):
        return make_settings(MAILER_SMTP_URL=faulty_smtp.url, **overrides)

    return build


@pytest.fixture
def campaign_app(make_app, campaign_settings):
    return make_app(campaign_settings())


@pytest.fixture
def api(campaign_app) -> Callable[..., Any]:
    """`api("post", "/api/v1/...", json=...)` as a marketer."""
    with campaign_app.app_context():
        from mailer.extensions import db

        _, key = create_api_key(db.session, Role.MARKETER, "tests")
    client = campaign_app.test_client()

    def call(method: str, path: str, **kwargs: Any):
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        return getattr(client, method)(path, headers=headers, **kwargs)

    return call


@pytest.fixture
def campaign_session(campaign_app) -> Iterator[Session]:
    s = campaign_app.extensions["mailer.db"]()
    yield s
    s.close()


def make_audience(
    session: Session, count: int, topic_slug: str = "news", prefix: str = "reader"
) -> tuple[Topic, list[int]]:
    topic = forms.ensure_topic(session, topic_slug, topic_slug.title(), "")
    now = utcnow()
    ids = []
    subscribers = [
        Subscriber(
            email=f"{prefix}{i}@example.org",
            name=f"Reader {i}",
            status=SubscriberStatus.ACTIVE,
            confirmed_at=now,
            attributes={"first_name": f"Reader{i}"},
        )
        for i in range(count)
    ]
    session.add_all(subscribers)
    session.flush()
    session.add_all(
        Subscription(
            subscriber_id=s.id,
            topic_id=topic.id,
            status=SubscriptionStatus.ACTIVE,
            confirmed_at=now,
        )
        for s in subscribers
    )
    ids = [s.id for s in subscribers]
    session.commit()
    return topic, ids


def make_campaign(session: Session, topic: Topic, **values: Any) -> Campaign:
    template = Template(name="Autumn", mjml=values.pop("mjml", MJML))
    session.add(template)
    session.flush()
    campaign = Campaign(
        name=values.pop("name", "Autumn offer"),
        subject=values.pop("subject", "Autumn offer for {{ subscriber.first_name }}"),
        from_name="Shop",
        from_email="news@shop.example",
        template_id=template.id,
        topic_id=topic.id,
        **values,
    )
    session.add(campaign)
    session.commit()
    return campaign


@pytest.fixture
def run_jobs(campaign_app) -> Callable[[], int]:
    """Run queued jobs with the real RQ worker (burst), in this process."""
    from rq import SimpleWorker

    from mailer.extensions import jobs

    def run() -> int:
        with campaign_app.app_context():
            before = sum(q.count for q in jobs.queues)
            worker = SimpleWorker(jobs.queues, connection=jobs.redis)
            worker.work(burst=True, with_scheduler=False)
            failed = [j for q in jobs.queues for j in q.failed_job_registry.get_job_ids()]
            assert not failed, f"jobs failed: {failed}"
            return before

    return run


# Fast leases and sweeps, so a test sees recovery within seconds, not minutes.
FAST_RECOVERY = {
    "MAILER_CLAIM_LEASE": "2",
    "MAILER_SENDING_LEASE": "4",
    "MAILER_CAMPAIGN_SWEEP_SECONDS": "1",
    "MAILER_SEND_BATCH_SIZE": "50",
}


@pytest.fixture
def fleet(make_app, make_settings, faulty_smtp, database_url, redis_server, tmp_path):
    """`fleet(**env)` → (app, Processes): an in-process app and real worker/cron processes on
    the same database, Redis and SMTP server, all with the same settings."""
    from tests.campaigns.processes import Processes
    from tests.conftest import RELAXED_LIMITS

    started: list[Processes] = []

    def build(**overrides: str):
        env = {**FAST_RECOVERY, "MAILER_SMTP_URL": faulty_smtp.url, **overrides}
        app = make_app(make_settings(**env))
        full = {
            "MAILER_ENV": "test",
            "MAILER_INSTANCE_PATH": str(tmp_path / "instance"),
            "MAILER_SECRET_KEY": "test-secret-key-not-for-production",
            "MAILER_DATABASE_URL": database_url,
            "MAILER_REDIS_URL": redis_server.url,
            "MAILER_BASE_URL": "http://localhost",
            **RELAXED_LIMITS,
            **env,
        }
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        procs = Processes(full, logs)
        started.append(procs)
        return app, procs

    yield build
    for procs in started:
        procs.stop_all()
