"""Case "signup": `POST /subscribe/<form>` under gunicorn and wrk, then every email sent.

The product runs as in production (`gunicorn wsgi:app`, PostgreSQL with its durable defaults,
Redis on a unix socket); the yardstick is the hello-world route of the same app and server
(`bench.hello`). wrk posts what a browser posts from the hosted form (`bench/wrk/signup.lua`):
the CSRF token, the signed start time and the session cookie from one real GET of the form
page, fetched at least `MAILER_MIN_FILL_SECONDS` before the run, the consent box, a name, the
empty honeypot, and a new address every time. Rounds are interleaved (yardstick, product,
yardstick, ...) and each figure is the median of its rounds.

The per-IP sign-up limit is raised for the run through its setting (every request comes from
127.0.0.1): `MAILER_SIGNUP_RATE_LIMIT=1000000/minute;10000000/hour`, two windows as in the
default, so the limiter does the same work per request. The per-address limit, the minimum
fill time and the confirmation window keep their defaults (every address is new).

A request only checks the sign-up and accepts it into Redis (one XADD; the first of each
half-second also enqueues a drain job); the workers write it. After the runs, the drain (what
the job `workers.jobs.drain_signups` runs, in this process until the intake is empty) writes
every accepted sign-up, timed: sign-ups written per second. Then the count
check: every sign-up the server accepted has its subscriber, its "requested" consent event
and its confirmation email row, queued in RQ send jobs (up to 50 a job); then four real
`mailer worker --burst` processes send them all to the SMTP sink, whose counter must move by
exactly that many. The drain and the workers run after the measurement, not during it: on two
cores they would take the CPU the web server is measured on.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rq import Queue
from sqlalchemy import create_engine, func, select

from bench import http_load
from bench.services import Postgres, Redis, SmtpSink
from mailer import config, create_app, migrate, tasks
from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.delivery.models import MessageKind, MessageStatus, OutboundMessage
from mailer.extensions import QUEUE_NAME, db, jobs
from mailer.subscribers import drain, forms, intake
from mailer.subscribers.models import Subscriber

MAILER = str(Path(sys.executable).with_name("mailer"))
BASE_URL = "https://news.shop.example"
SLUG = "news"
CONSENT = "Yes, send me the Shop newsletter about once a month. I can unsubscribe at any time."
RATE_LIMITS = {"MAILER_SIGNUP_RATE_LIMIT": "1000000/minute;10000000/hour"}
SEND_WORKERS = 4  # `mailer worker --burst` processes sending the confirmations afterwards
LABELS = {"hello": "hello-world (same app and server)", "signup": "sign-up (`wsgi:app`)"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_STARTED = re.compile(r'name="started" value="([^"]+)"')


@dataclass
class SignupResult:
    seconds: float  # per measured run
    rounds: dict[str, list[http_load.WrkResult]]
    accepted: int  # sign-ups wrk got the "check your inbox" page for (warm-ups included)
    subscribers: int
    events: int  # "requested" consent events
    emails: int  # confirmation rows
    queued: int  # RQ send jobs waiting before the workers started
    kicks: int  # drain jobs the requests enqueued (at most one per half-second)
    drain_seconds: float  # writing every accepted sign-up (`workers.jobs.drain_signups`)
    sent: int  # accepted by the SMTP sink
    send_seconds: float
    settings: dict[str, str] = field(default_factory=dict)

    def rate(self, what: str) -> float:
        return http_load.median([r.rate for r in self.rounds[what]])

    def cpu_us(self, what: str) -> float:
        return http_load.median([r.cpu_us for r in self.rounds[what]])

    @property
    def ratio(self) -> float:
        return self.rate("signup") / self.rate("hello")


class SignupCase:
    def __init__(self, pg: Postgres, redis: Redis, sink: SmtpSink, workdir: Path, log: Any) -> None:
        self.pg, self.redis, self.sink, self.workdir, self.log = pg, redis, sink, workdir, log
        self.url = pg.create_database("bench_signup")
        self.env = {
            **os.environ,
            "MAILER_ENV": "development",
            "MAILER_DATABASE_URL": self.url,
            "MAILER_REDIS_URL": redis.url,
            "MAILER_SMTP_URL": sink.url,
            "MAILER_SECRET_KEY": "bench-secret-key-" + "x" * 40,
            "MAILER_BASE_URL": BASE_URL,
            "MAILER_INSTANCE_PATH": str(workdir / "instance"),
            **RATE_LIMITS,
        }
        self.settings = config.load(self.env)
        self.engine = create_engine(self.url)

    def prepare(self) -> None:
        migrate.upgrade(self.url)
        app = create_app(self.settings)
        with app.app_context():
            session = db.sessionmaker()
            news = forms.ensure_topic(session, "news", "Newsletter", "About once a month.")
            forms.ensure_form(
                session,
                SLUG,
                "Subscribe to the Shop newsletter",
                [news],
                CONSENT,
                locale="en",
                ask_name=True,
                allowed_origins=[BASE_URL],
            )
            session.close()
        app.extensions["mailer.db"].kw["bind"].dispose()
        client = self.redis.client()
        client.flushdb()
        client.close()

    def _visit_form(self, base: str) -> tuple[list[str], float]:
        """What one browser gets from the form page: (csrf_token, started, cookie), and when."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{base}/subscribe/{SLUG}", timeout=30) as response:
            html = response.read().decode()
        csrf, started = _CSRF.search(html), _STARTED.search(html)
        if not (csrf and started):
            raise RuntimeError("the form page has no csrf_token or started field")
        cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        return [csrf.group(1), started.group(1), cookie], time.monotonic()

    def measure(self, rounds: int, seconds: float, warmup: float) -> SignupResult:
        results: dict[str, list[http_load.WrkResult]] = {"hello": [], "signup": []}
        accepted = 0
        watched = [self.redis.proc.pid, self._postmaster_pid()]
        for n in range(rounds):
            for what in ("hello", "signup"):
                target = "bench.hello:app" if what == "hello" else "wsgi:app"
                server = http_load.Gunicorn(
                    target, self.env, self.workdir / f"gunicorn-signup-{what}-{n}.log"
                )
                try:
                    if what == "hello":
                        url, script = server.url + http_load.HELLO_PATH, "hello.lua"
                        warm_args = run_args = None
                    else:
                        url, script = f"{server.url}/subscribe/{SLUG}", "signup.lua"
                        visit, at = self._visit_form(server.url)
                        # A person takes longer than the minimum fill time to fill the form.
                        time.sleep(
                            max(0.0, at + self.settings.min_fill_seconds + 0.5 - time.monotonic())
                        )
                        warm_args, run_args = [f"w{n}", *visit], [f"r{n}", *visit]
                    warm = http_load.wrk(url, script, warmup, warm_args)
                    result = http_load.wrk(
                        url, script, seconds, run_args, cpu_of=[server.pid, *watched]
                    )
                    server.check_clean()
                finally:
                    server.stop()
                for run in (warm, result):
                    if run.non_2xx or run.socket_errors:
                        raise RuntimeError(f"{what}: failed requests: {run}\n{server.tail()}")
                if what == "signup":
                    accepted += warm.requests + result.requests
                results[what].append(result)
                self.log(
                    f"  round {n + 1}, {LABELS[what]}: {result.rate:,.0f} req/s, "
                    f"{result.cpu_us:,.0f} CPU µs per request (server, PostgreSQL, Redis)"
                )
        kicks = self._queued()  # nothing else is queued before the drain: only its kicks
        self.log(f"  {_waiting(self.redis):,} sign-ups accepted into Redis; draining them")
        drain_seconds = self._drain()
        subscribers, events, emails, _jobs = self._counts()
        queued = self._queued_emails()
        self.log(
            f"  {subscribers:,} sign-ups written in {drain_seconds:.1f} s "
            f"({subscribers / drain_seconds:,.0f}/s); {kicks} drain jobs kicked"
        )
        # At most one request in flight per connection when a wrk run ends.
        in_flight = http_load.WRK_CONNECTIONS * rounds * 2
        if not accepted <= subscribers <= accepted + in_flight:
            raise RuntimeError(f"wrk got {accepted:,} pages back, {subscribers:,} subscribers")
        if not subscribers == events == emails == queued:
            raise RuntimeError(
                f"{subscribers:,} subscribers, {events:,} requested events, {emails:,} "
                f"confirmation rows, {queued:,} emails in queued jobs: they must be equal"
            )
        self.log(f"  {subscribers:,} sign-ups recorded; sending their confirmations")
        sent, send_seconds = self._send_all(emails)
        return SignupResult(
            seconds=seconds,
            rounds=results,
            accepted=accepted,
            subscribers=subscribers,
            events=events,
            emails=emails,
            queued=queued,
            kicks=kicks,
            drain_seconds=drain_seconds,
            sent=sent,
            send_seconds=send_seconds,
            settings={
                **RATE_LIMITS,
                "gunicorn": " ".join(http_load.GUNICORN),
                "versions": http_load.versions(),
                "send_workers": str(SEND_WORKERS),
            },
        )

    def _drain(self) -> float:
        """Write every accepted sign-up as the drain job does (`workers.jobs.drain_signups`
        calls `drain.drain`; here its hand-over to a fresh job is this loop), timed."""
        app = create_app(self.settings)
        began = time.perf_counter()
        with app.app_context():
            while intake.waiting(jobs.redis):
                with db.sessionmaker() as session:
                    drain.drain(
                        session,
                        jobs.redis,
                        window_seconds=self.settings.confirmation_window,
                        domain=self.settings.server_name,
                    )
        seconds = time.perf_counter() - began
        app.extensions["mailer.db"].kw["bind"].dispose()
        return seconds

    def _queued(self) -> int:
        client = self.redis.client()
        count = Queue(QUEUE_NAME, connection=client).count
        client.close()
        return count

    def _queued_emails(self) -> int:
        """System emails waiting in queued send jobs (one per job, or a batch per job)."""
        client = self.redis.client()
        total = 0
        for job in Queue(QUEUE_NAME, connection=client).get_jobs():
            if job.func_name == tasks.SEND_MESSAGE:
                total += 1
            elif job.func_name == tasks.SEND_MESSAGES:
                total += len(job.args[0])
        client.close()
        return total

    def _counts(self) -> tuple[int, int, int, int]:
        with self.engine.connect() as conn:
            subscribers = conn.scalar(select(func.count()).select_from(Subscriber)) or 0
            events = (
                conn.scalar(
                    select(func.count())
                    .select_from(ConsentEvent)
                    .where(ConsentEvent.type == ConsentEventType.REQUESTED)
                )
                or 0
            )
            emails = (
                conn.scalar(
                    select(func.count())
                    .select_from(OutboundMessage)
                    .where(OutboundMessage.kind == MessageKind.CONFIRMATION)
                )
                or 0
            )
        return subscribers, events, emails, self._queued()

    def _send_all(self, expected: int) -> tuple[int, float]:
        """`SEND_WORKERS` `mailer worker --burst` send every queued confirmation (RQ's forking
        worker: a work horse per job, as in production); the sink counts them."""
        before = self.sink.accepted()
        began = time.perf_counter()
        procs = []
        for n in range(SEND_WORKERS):
            log = open(self.workdir / f"signup-worker-{n}.log", "wb")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [MAILER, "worker", "--burst"],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        # Generous: a forked work horse per email is slow on a busy machine (about 40 jobs/s
        # per worker on a quiet one); this only catches workers that are stuck.
        deadline = time.monotonic() + 180 + expected / 2
        for proc in procs:
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for p in procs:  # each in its own session: the worker and its work horse
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=10)
                raise RuntimeError("the workers did not send every confirmation in time") from None
        send_seconds = time.perf_counter() - began
        time.sleep(0.3)  # the sink prints its counter after each message
        sent = self.sink.accepted() - before
        with self.engine.connect() as conn:
            statuses = dict(
                conn.execute(
                    select(OutboundMessage.status, func.count()).group_by(OutboundMessage.status)
                ).all()
            )
        if statuses != {MessageStatus.SENT: expected} or sent != expected:
            raise RuntimeError(
                f"{expected:,} confirmations: statuses {statuses}, the sink accepted {sent:,}"
            )
        return sent, send_seconds

    def _postmaster_pid(self) -> int:
        return int((self.pg.data / "postmaster.pid").read_text().split()[0])

    def close(self) -> None:
        self.engine.dispose()


def _waiting(redis: Redis) -> int:
    client = redis.client()
    try:
        return intake.waiting(client)
    finally:
        client.close()


def run(
    pg: Postgres,
    redis: Redis,
    sink: SmtpSink,
    workdir: Path,
    rounds: int,
    seconds: float,
    warmup: float,
    log: Any,
) -> SignupResult:
    case = SignupCase(pg, redis, sink, workdir, log)
    try:
        case.prepare()
        return case.measure(rounds, seconds, warmup)
    finally:
        case.close()
