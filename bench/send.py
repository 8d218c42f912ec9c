"""Case 1, campaign send end to end: PostgreSQL → RQ → render → MIME → SMTP, real processes.

Each configuration (1 or 2 `mailer worker` processes, in-app DKIM off or on) sends a fresh
campaign to the same audience: the clock starts just before `lifecycle.send_now` (what the
API's send calls) and stops at the campaign's `finished_at`, written by the sender that
finds nothing left. The run then checks that every delivery is `sent` and that the SMTP sink
accepted exactly that many messages. The baselines (the ceiling and the naive stack, see
`bench.baselines`) run in the same session against the same sink and audience.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rq import Worker
from rq.registry import FailedJobRegistry
from sqlalchemy import create_engine, func, select, text

from bench import baselines, cpu, population
from bench.relay import SlowRelay
from bench.services import Postgres, Redis, SmtpSink, libpq_url
from mailer import config, create_app, migrate
from mailer.campaigns import instrument, lifecycle, rendering, templates
from mailer.campaigns.models import Campaign, CampaignStatus, Delivery
from mailer.campaigns.rendering import PreparedCampaign, Recipient
from mailer.extensions import CAMPAIGN_QUEUE_NAME, db

MAILER = str(Path(sys.executable).with_name("mailer"))
TEMPLATE = Path(__file__).with_name("newsletter.mjml")
SUBJECT = "{{ subscriber.first_name }}, your autumn letter for {{ subscriber.attributes.city }}"
PREHEADER = "Member prices until the end of the month, {{ subscriber.first_name }}."
DOMAIN = "shop.example"
SELECTOR = "bench2048"


@dataclass(frozen=True)
class Config:
    workers: int
    dkim: bool
    senders: int | None = None  # MAILER_SEND_CONCURRENCY; None: the product's default

    @property
    def label(self) -> str:
        workers = f"{self.workers} worker{'s' if self.workers > 1 else ''}"
        label = f"{workers}, DKIM {'on' if self.dkim else 'off'}"
        if self.senders is not None:
            label += f", {self.senders} sender{'s' if self.senders > 1 else ''} each"
        return label

    @property
    def slug(self) -> str:
        """For file names (worker logs, profiles)."""
        dkim = "dkim" if self.dkim else "plain"
        return f"{self.workers}w-{dkim}-{self.senders or 'default'}"


@dataclass
class Measured:
    label: str
    messages: int
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass
class SendResults:
    recipients: int
    message_bytes: dict[str, int]
    product: dict[Config, Measured]
    ceiling: dict[int, Measured]
    naive: dict[tuple[int, bool], Measured]
    # The same campaign, smaller, through `bench.relay.SlowRelay`: (delay in s, runs).
    relay: tuple[float, dict[Config, Measured]]
    settings: dict[str, str]
    template_bytes: int
    profiles: list[Path]


class Workers:
    """`count` real `mailer worker` processes (RQ's forking Worker, its scheduler on)."""

    def __init__(self, count: int, env: dict[str, str], logs: Path, redis: Redis) -> None:
        self.redis = redis
        self.procs: list[subprocess.Popen] = []
        self.logs = logs
        for n in range(count):
            log = open(logs / f"worker-{n}.log", "wb")  # noqa: SIM115 (child owns it)
            self.procs.append(
                subprocess.Popen(
                    [MAILER, "worker"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        client = redis.client()
        deadline = time.monotonic() + 90
        while len(Worker.all(connection=client)) < count:
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not register with Redis:\n" + self.tail())
            time.sleep(0.1)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def check_alive(self) -> None:
        dead = [p.pid for p in self.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"worker(s) {dead} exited:\n" + self.tail())

    def tail(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-2500:]}"
            for log in sorted(self.logs.glob("worker-*.log"))
        )

    def stop(self) -> None:
        """Warm shutdown (SIGTERM: RQ finishes the job in hand), then the process groups we
        created, if anything is left."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _dkim_key(directory: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


class SendCase:
    def __init__(
        self,
        pg: Postgres,
        redis: Redis,
        sink: SmtpSink,
        workdir: Path,
        recipients: int,
        naive_sample: tuple[int, int],
        send_env: dict[str, str],
        profile_dir: Path | None,
        log: Any,
        database: str = "bench_send",
    ) -> None:
        self.pg, self.redis, self.sink = pg, redis, sink
        self.workdir = workdir
        self.recipients = recipients
        self.naive_sample = naive_sample  # (without DKIM, with DKIM)
        self.profile_dir = profile_dir
        self.log = log
        self.key_path = _dkim_key(workdir)
        self.database = database
        self.url = pg.create_database(database)
        self.env = {
            **os.environ,
            "MAILER_ENV": "development",
            "MAILER_DATABASE_URL": self.url,
            "MAILER_REDIS_URL": redis.url,
            "MAILER_SMTP_URL": sink.url,
            "MAILER_SECRET_KEY": "bench-secret-key-" + "x" * 40,
            "MAILER_BASE_URL": f"https://news.{DOMAIN}",
            "MAILER_INSTANCE_PATH": str(workdir / "instance"),
            "MAILER_UNSUBSCRIBE_MAILTO": f"unsubscribe@{DOMAIN}",
            "MAILER_SEND_JOBS": "4",
            "MAILER_SEND_BATCH_SIZE": "200",
            **send_env,
        }
        self.dkim_env = {
            "MAILER_DKIM_DOMAIN": DOMAIN,
            "MAILER_DKIM_SELECTOR": SELECTOR,
            "MAILER_DKIM_PRIVATE_KEY": str(self.key_path),
        }
        for name in self.dkim_env:
            self.env.pop(name, None)
        self.engine = create_engine(self.url)

    # -- setup ------------------------------------------------------------------------------

    def prepare(self) -> None:
        migrate.upgrade(self.url)
        started = time.perf_counter()
        topics = population.load_subscribers(self.engine, self.recipients, everyone_active=True)
        self.topic_id = topics["news"]
        self.log(
            f"  audience of {self.recipients:,} loaded in {time.perf_counter() - started:.1f} s"
        )
        self.settings = config.load(self.env)
        self.app = create_app(self.settings)
        with self.app.app_context():
            session = db.sessionmaker()
            template = templates.create(
                session,
                name="Autumn letter",
                mjml=TEMPLATE.read_text(),
                node=self.settings.node_binary,
            )
            session.commit()
            self.template_id = template.id
            session.close()
        # A frozen campaign that is never sent: the baselines render from its content.
        self.sample_id = self._new_campaign("sample (not sent)")
        with self.app.app_context():
            session = db.sessionmaker()
            campaign = session.get(Campaign, self.sample_id)
            rendering.freeze(session, campaign, node=self.settings.node_binary)
            session.commit()
            session.close()

    def _new_campaign(self, name: str) -> int:
        with self.app.app_context():
            session = db.sessionmaker()
            campaign = Campaign(
                name=name,
                subject=SUBJECT,
                preheader=PREHEADER,
                from_name="Shop",
                from_email=f"news@{DOMAIN}",
                reply_to=f"help@{DOMAIN}",
                template_id=self.template_id,
                topic_id=self.topic_id,
                track_opens=True,
                track_clicks=True,
            )
            session.add(campaign)
            session.commit()
            campaign_id = campaign.id
            session.close()
        return campaign_id

    def _reset(self) -> None:
        """Each configuration starts from the same state: no deliveries, empty queues."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("TRUNCATE deliveries CASCADE"))
            conn.execute(text("VACUUM ANALYZE deliveries"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            conn.execute(text("SELECT pg_stat_statements_reset()"))
        client = self.redis.client()
        client.flushdb()
        client.close()

    # -- the product ------------------------------------------------------------------------

    def run_product(self, cfg: Config) -> Measured:
        self._reset()
        env = {**self.env, **(self.dkim_env if cfg.dkim else {})}
        if cfg.senders is not None:
            env["MAILER_SEND_CONCURRENCY"] = str(cfg.senders)
        logs = self.workdir / f"{self.database}-logs-{cfg.slug}"
        logs.mkdir(exist_ok=True)
        campaign_id = self._new_campaign(cfg.label)
        workers = Workers(cfg.workers, env, logs, self.redis)
        profilers = self._start_profilers(workers, cfg) if self.profile_dir else []
        try:
            groups = {
                "workers": workers.pids,
                "postgres": [self._postmaster_pid()],
                "redis": [self.redis.proc.pid],
                "smtp-sink": [self.sink.proc.pid],
            }
            accepted_before = self.sink.accepted()
            cpu_before, busy_before = cpu.snapshot(groups), cpu.machine_busy_seconds()
            clock_before = time.monotonic()
            started = time.time()
            with self.app.app_context():
                session = db.sessionmaker()
                lifecycle.send_now(session, campaign_id)
                session.close()
            finished = self._wait_sent(campaign_id, workers, started)
            cpu_after, busy_after = cpu.snapshot(groups), cpu.machine_busy_seconds()
            wall = time.monotonic() - clock_before
        finally:
            for profiler in profilers:
                profiler.send_signal(signal.SIGINT)
            for profiler in profilers:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    profiler.wait(timeout=60)
            workers.stop()
        seconds = finished["finished_at"].timestamp() - started
        statuses = finished["statuses"]
        if statuses != {"sent": self.recipients}:
            raise RuntimeError(f"{cfg.label}: deliveries not all sent: {statuses}")
        time.sleep(0.3)  # the sink prints its counter after each message
        accepted = self.sink.accepted() - accepted_before
        if accepted != self.recipients:
            raise RuntimeError(
                f"{cfg.label}: the sink accepted {accepted}, expected {self.recipients}"
            )
        per_thousand = {
            name: (cpu_after[name] - cpu_before[name]) * 1000 / self.recipients for name in groups
        }
        detail = {
            "statements": self._top_statements(),
            "resolve_seconds": finished["resolve_seconds"],
            "cpu_ms_per_message": per_thousand,
            "machine_busy": (busy_after - busy_before) / (wall * (os.cpu_count() or 1)),
        }
        return Measured(cfg.label, self.recipients, seconds, detail)

    def _top_statements(self, limit: int = 6) -> list[tuple[int, float, float, int, str]]:
        """The statements PostgreSQL spent most time on during the run: calls, total ms,
        mean ms, rows, and the start of the SQL."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT calls, total_exec_time, mean_exec_time, rows, "
                    "left(regexp_replace(query, '\\s+', ' ', 'g'), 110) "
                    "FROM pg_stat_statements WHERE dbid = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "ORDER BY total_exec_time DESC LIMIT :limit"
                ),
                {"limit": limit},
            ).all()
        return [tuple(row) for row in rows]

    def _postmaster_pid(self) -> int:
        return int((self.pg.data / "postmaster.pid").read_text().split()[0])

    def _wait_sent(self, campaign_id: int, workers: Workers, started: float) -> dict[str, Any]:
        deadline = time.monotonic() + 300 + self.recipients / 20
        client = self.redis.client()
        failed = FailedJobRegistry(CAMPAIGN_QUEUE_NAME, connection=client)
        while True:
            with self.engine.connect() as conn:
                status, finished_at, started_at, resolved_at = conn.execute(
                    select(
                        Campaign.status,
                        Campaign.finished_at,
                        Campaign.started_at,
                        Campaign.resolved_at,
                    ).where(Campaign.id == campaign_id)
                ).one()
            if status is CampaignStatus.SENT:
                break
            if failed.count:
                raise RuntimeError("a campaign job failed:\n" + workers.tail())
            workers.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"campaign still {status.value} at the deadline\n{workers.tail()}"
                )
            time.sleep(0.2)
        client.close()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Delivery.status, func.count())
                .where(Delivery.campaign_id == campaign_id)
                .group_by(Delivery.status)
            ).all()
        return {
            "finished_at": finished_at,
            "resolve_seconds": (resolved_at - started_at).total_seconds(),
            "statuses": {s.value: n for s, n in rows},
        }

    def _start_profilers(self, workers: Workers, cfg: Config) -> list[subprocess.Popen]:
        """py-spy on each worker and its work horses (collapsed stacks), if installed."""
        py_spy = Path(sys.executable).with_name("py-spy")
        if not py_spy.exists():
            self.log("  (py-spy is not installed in .venv: no profile)")
            return []
        assert self.profile_dir is not None
        procs = []
        for n, pid in enumerate(workers.pids):
            out = self.profile_dir / f"{cfg.slug}-{n}.txt"
            procs.append(
                subprocess.Popen(
                    [
                        str(py_spy),
                        "record",
                        "--pid",
                        str(pid),
                        "--subprocesses",
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--nonblocking",
                        "--output",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return procs

    # -- baselines --------------------------------------------------------------------------

    def _frozen(self) -> tuple[Campaign, Any]:
        with self.app.app_context():
            session = db.sessionmaker()
            campaign = session.get(Campaign, self.sample_id)
            topic = campaign.topic
            session.expunge_all()
            session.close()
        return campaign, topic

    def sample_message(self, dkim: bool) -> bytes:
        """One message as the product renders it (a frozen campaign), for sizes and the
        ceiling's pre-built bytes."""
        campaign, topic = self._frozen()
        settings = config.load({**self.env, **(self.dkim_env if dkim else {})})
        with self.app.app_context():
            tokens = self.app.extensions["mailer.tokens"]
            prepared = PreparedCampaign.from_campaign(campaign, topic, settings, tokens)
        recipient = Recipient(
            subscriber_id=1,
            email="ingrid.hansen.1@example.org",
            name="Ingrid Hansen",
            locale="nb",
            attributes={"first_name": "Ingrid", "city": "Tromsø", "plan": "pro"},
            tracking_enabled=True,
            delivery_id=1,
        )
        return prepared.render(recipient).data

    def naive_job(self, dkim: bool) -> baselines.NaiveJob:
        campaign, _topic = self._frozen()
        tracked, targets = instrument.instrument(campaign.frozen_html, clicks=True, opens=True)
        return baselines.NaiveJob(
            pg_url=libpq_url(self.url),
            topic_id=self.topic_id,
            subject=campaign.frozen_subject,
            html=tracked,
            text=campaign.frozen_text or "",
            click_targets=targets,
            secret_key=self.settings.secret_key,
            base_url=self.settings.base_url,
            domain=self.settings.server_name,
            mailto=f"unsubscribe@{DOMAIN}",
            dkim=(SELECTOR.encode(), DOMAIN.encode(), self.key_path.read_bytes()) if dkim else None,
        )

    def _checked_sink(self, label: str, expected: int, run: Any) -> float:
        before = self.sink.accepted()
        rate = run()
        time.sleep(0.3)
        accepted = self.sink.accepted() - before
        if accepted != expected:
            raise RuntimeError(f"{label}: the sink accepted {accepted}, expected {expected}")
        return rate

    def run_ceiling(self, procs: int) -> Measured:
        data = self.sample_message(dkim=False)
        total = self.recipients
        rate = self._checked_sink(
            "ceiling", total, lambda: baselines.ceiling(self.sink.port, data, total, procs)
        )
        return Measured(f"ceiling, {procs} process{'es' if procs > 1 else ''}", total, total / rate)

    def run_naive(self, procs: int, dkim: bool) -> Measured:
        total = min(self.recipients, self.naive_sample[1 if dkim else 0])
        job = self.naive_job(dkim)
        rate = self._checked_sink(
            "naive", total, lambda: baselines.naive(self.sink.port, job, total, procs)
        )
        processes = f"{procs} process{'es' if procs > 1 else ''}"
        label = f"naive stack, {processes}, DKIM {'on' if dkim else 'off'}"
        return Measured(label, total, total / rate)

    def close(self) -> None:
        self.engine.dispose()


def run(
    pg: Postgres,
    redis: Redis,
    sink: SmtpSink,
    workdir: Path,
    recipients: int,
    naive_sample: tuple[int, int],
    send_env: dict[str, str],
    profile_dir: Path | None,
    log: Any,
) -> SendResults:
    case = SendCase(pg, redis, sink, workdir, recipients, naive_sample, send_env, profile_dir, log)
    try:
        case.prepare()
        product: dict[Config, Measured] = {}
        ceiling: dict[int, Measured] = {}
        naive: dict[tuple[int, bool], Measured] = {}
        # Baselines and product runs interleaved, so slow drift on a shared machine hits both.
        for procs in (1, 2):
            ceiling[procs] = case.run_ceiling(procs)
            log(f"  {ceiling[procs].label}: {ceiling[procs].rate:,.0f} msg/s")
        for dkim in (False, True):
            # The default settings; without DKIM also one sender a worker, the chain the
            # product's senders-per-worker (`MAILER_SEND_CONCURRENCY`) overlaps.
            configs = [Config(1, dkim), Config(2, dkim)]
            if not dkim:
                configs += [Config(1, dkim, senders=1), Config(2, dkim, senders=1)]
            for cfg in configs:
                product[cfg] = case.run_product(cfg)
                m = product[cfg]
                log(f"  product, {cfg.label}: {m.rate:,.0f} msg/s ({m.seconds:.1f} s)")
            for procs in (1, 2):
                naive[(procs, dkim)] = case.run_naive(procs, dkim)
                m = naive[(procs, dkim)]
                log(f"  {m.label}: {m.rate:,.0f} msg/s ({m.messages:,} in {m.seconds:.1f} s)")
        relay = _relay_runs(pg, redis, sink, workdir, recipients, send_env, log)
        plain, signed = case.sample_message(False), case.sample_message(True)
        template_bytes = len((case._frozen()[0].frozen_html or "").encode())
        settings = {
            "MAILER_SEND_JOBS": case.env["MAILER_SEND_JOBS"],
            "MAILER_SEND_BATCH_SIZE": case.env["MAILER_SEND_BATCH_SIZE"],
            "MAILER_SEND_CONCURRENCY": str(case.settings.send_concurrency),
        }
        profiles = sorted(profile_dir.glob("*.txt")) if profile_dir else []
        return SendResults(
            recipients=recipients,
            message_bytes={"DKIM off": len(plain), "DKIM on": len(signed)},
            product=product,
            ceiling=ceiling,
            naive=naive,
            relay=relay,
            settings=settings,
            template_bytes=template_bytes,
            profiles=profiles,
        )
    finally:
        case.close()


RELAY_DELAY = 0.010  # a relay in the same region, a few network hops away
RELAY_RECIPIENTS = 2_000


def _relay_runs(
    pg: Postgres,
    redis: Redis,
    sink: SmtpSink,
    workdir: Path,
    recipients: int,
    send_env: dict[str, str],
    log: Any,
) -> tuple[float, dict[Config, Measured]]:
    """One worker sending to a relay `RELAY_DELAY` away, with one sender and with the
    default: what the senders a worker runs side by side are for. On loopback the SMTP
    server answers in a tenth of a millisecond and a sender mostly waits on its own commit;
    across a network it mostly waits on the server."""
    proxy = SlowRelay(sink.port, RELAY_DELAY)
    size = min(recipients, RELAY_RECIPIENTS)
    env = {**send_env, "MAILER_SMTP_URL": proxy.url}
    case = SendCase(pg, redis, sink, workdir, size, (0, 0), env, None, log, "bench_relay")
    runs: dict[Config, Measured] = {}
    try:
        case.prepare()
        for cfg in (Config(1, False, senders=1), Config(1, False)):
            runs[cfg] = case.run_product(cfg)
            m = runs[cfg]
            log(f"  relay {RELAY_DELAY * 1000:.0f} ms away, {cfg.label}: {m.rate:,.0f} msg/s")
    finally:
        case.close()
        proxy.stop()
    return RELAY_DELAY, runs
