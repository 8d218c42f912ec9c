"""Case "pixel": `GET /t/o/<token>` under gunicorn and wrk, then the flush, then a count.

A sent campaign with one delivery per subscriber is written into PostgreSQL, and each
delivery's pixel URL is signed by the product (`TrackingLinks.open_pixel`, the code that puts
it in the email). wrk fetches them in turn, as mail clients would after a campaign went out,
against `gunicorn wsgi:app`; the yardstick is the hello-world route of the same app and server
(`bench.hello`), and, to show what the fast path buys, the Flask view it stands in front of
(`bench.hello:flask_view`). Rounds are interleaved (yardstick, product, view, yardstick, ...)
and each figure is the median of its rounds.

Then the flush (`mailer.tracking.flush.flush_events`, what `mailer cron` runs every 5 s) runs
until the stream is empty, and the count check: Redis's own count of XADD calls (every hit
the app recorded), the rows in `tracking_events`, and the growth of the subscribers' open
counters must all be equal (zero lost, none counted twice), and at least every pixel wrk got
back was recorded.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

from bench import http_load, population
from bench.services import Postgres, Redis
from mailer import config, create_app, migrate
from mailer.campaigns.models import Campaign, CampaignStatus, Template
from mailer.database import utcnow
from mailer.extensions import db
from mailer.subscribers.models import Subscriber
from mailer.tracking import flush, stream
from mailer.tracking.links import TrackingLinks
from mailer.tracking.models import EventKind, TrackingEvent

BASE_URL = "https://news.shop.example"
LABELS = {
    "hello": "hello-world (same app and server)",
    "pixel": "open pixel (`wsgi:app`)",
    "view": "open pixel through the Flask view (`bench.hello:flask_view`)",
}
TARGETS = {"hello": "bench.hello:app", "pixel": "wsgi:app", "view": "bench.hello:flask_view"}


@dataclass
class PixelResult:
    deliveries: int
    seconds: float  # per measured run
    rounds: dict[str, list[http_load.WrkResult]]
    recorded: int  # XADD calls Redis counted
    answered: int  # pixels wrk got back from the product (warm-ups included)
    events: int  # tracking_events rows after the flush
    profile_opens: int  # growth of the subscribers' open counters
    flush_seconds: float
    settings: dict[str, str] = field(default_factory=dict)

    def rate(self, what: str) -> float:
        return http_load.median([r.rate for r in self.rounds[what]])

    @property
    def ratio(self) -> float:
        return self.rate("pixel") / self.rate("hello")


class PixelCase:
    def __init__(self, pg: Postgres, redis: Redis, workdir: Path, deliveries: int, log: Any):
        self.redis, self.workdir, self.deliveries, self.log = redis, workdir, deliveries, log
        self.url = pg.create_database("bench_pixel")
        self.env = {
            **os.environ,
            "MAILER_ENV": "development",
            "MAILER_DATABASE_URL": self.url,
            "MAILER_REDIS_URL": redis.url,
            "MAILER_SMTP_URL": "smtp://127.0.0.1:1",  # nothing is sent in this case
            "MAILER_SECRET_KEY": "bench-secret-key-" + "x" * 40,
            "MAILER_BASE_URL": BASE_URL,
            "MAILER_INSTANCE_PATH": str(workdir / "instance"),
        }
        self.engine = create_engine(self.url)
        self.paths = workdir / "pixel-paths.txt"

    def prepare(self) -> None:
        """The audience, a sent campaign with a delivery each, and their signed pixel URLs."""
        migrate.upgrade(self.url)
        topics = population.load_subscribers(self.engine, self.deliveries, everyone_active=True)
        settings = config.load(self.env)
        app = create_app(settings)
        with app.app_context():
            session = db.sessionmaker()
            template = Template(name="Plain", mjml="<mjml><mj-body></mj-body></mjml>")
            campaign = Campaign(
                name="Autumn letter",
                subject="Autumn",
                from_name="Shop",
                from_email="news@shop.example",
                template=template,
                topic_id=topics["news"],
                track_opens=True,
                track_clicks=True,
                status=CampaignStatus.SENT,
            )
            session.add(campaign)
            session.commit()
            # Sent two hours ago: opens now are a person's, not the delivery-time scanners'.
            sent_at = utcnow() - timedelta(hours=2)
            session.execute(
                text(
                    "INSERT INTO deliveries (campaign_id, subscriber_id, status, attempts, "
                    "sent_at) SELECT :campaign, id, 'sent', 1, :sent_at FROM subscribers "
                    "ORDER BY id"
                ),
                {"campaign": campaign.id, "sent_at": sent_at},
            )
            session.commit()
            ids = session.scalars(text("SELECT id FROM deliveries ORDER BY id")).all()
            session.close()
            links = TrackingLinks(app.extensions["mailer.tokens"], settings.base_url)
            with open(self.paths, "w") as out:
                for delivery_id in ids:
                    out.write(links.open_pixel(delivery_id).removeprefix(BASE_URL) + "\n")
        app.extensions["mailer.db"].kw["bind"].dispose()
        population.analyze(self.engine)

    def _opens(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.scalar(select(func.sum(Subscriber.open_count + Subscriber.machine_open_count)))
                or 0
            )

    def measure(self, rounds: int, seconds: float, warmup: float) -> PixelResult:
        client = self.redis.client()
        client.delete(stream.STREAM)
        client.config_resetstat()
        opens_before = self._opens()
        results: dict[str, list[http_load.WrkResult]] = {k: [] for k in TARGETS}
        answered = 0
        args = [str(self.paths)]
        redis_pid = self.redis.proc.pid
        for n in range(rounds):
            for what, target in TARGETS.items():
                server = http_load.Gunicorn(
                    target, self.env, self.workdir / f"gunicorn-pixel-{what}-{n}.log"
                )
                try:
                    if what == "hello":
                        url, script, script_args = (
                            server.url + http_load.HELLO_PATH,
                            "hello.lua",
                            None,
                        )
                    else:
                        url, script, script_args = server.url, "pixel.lua", args
                    warm = http_load.wrk(url, script, warmup, script_args)
                    result = http_load.wrk(
                        url, script, seconds, script_args, cpu_of=[server.pid, redis_pid]
                    )
                    server.check_clean()
                finally:
                    server.stop()
                for run in (warm, result):
                    if run.non_2xx or run.socket_errors:
                        raise RuntimeError(f"{what}: failed requests: {run}\n{server.tail()}")
                if what != "hello":
                    answered += warm.requests + result.requests
                results[what].append(result)
                self.log(
                    f"  round {n + 1}, {LABELS[what]}: {result.rate:,.0f} req/s, "
                    f"{result.cpu_us:,.0f} CPU µs per request (server and Redis)"
                )
        recorded = int(client.info("commandstats").get("cmdstat_xadd", {}).get("calls", 0))
        in_stream = int(client.xlen(stream.STREAM))
        if in_stream != recorded:
            raise RuntimeError(f"{recorded} XADD calls but {in_stream} entries in the stream")
        # At most one request in flight per connection when a wrk run ends.
        in_flight = http_load.WRK_CONNECTIONS * rounds * 2 * 2
        if not answered <= recorded <= answered + in_flight:
            raise RuntimeError(f"wrk got {answered:,} pixels back, Redis recorded {recorded:,}")

        began = time.perf_counter()
        settings = config.load(self.env)
        app = create_app(settings)
        with app.app_context():
            while client.xlen(stream.STREAM) or stream.pending_count(client):
                session = db.sessionmaker()
                flush.flush_events(
                    session, client, machine_open_seconds=settings.machine_open_seconds
                )
                session.close()
        flush_seconds = time.perf_counter() - began
        app.extensions["mailer.db"].kw["bind"].dispose()
        with self.engine.connect() as conn:
            events = int(
                conn.scalar(
                    select(func.count())
                    .select_from(TrackingEvent)
                    .where(TrackingEvent.kind == EventKind.OPEN)
                )
                or 0
            )
        profile_opens = self._opens() - opens_before
        client.close()
        if not recorded == events == profile_opens:
            raise RuntimeError(
                f"hits lost or doubled: {recorded:,} recorded in Redis, {events:,} events, "
                f"open counters grew by {profile_opens:,}"
            )
        return PixelResult(
            deliveries=self.deliveries,
            seconds=seconds,
            rounds=results,
            recorded=recorded,
            answered=answered,
            events=events,
            profile_opens=profile_opens,
            flush_seconds=flush_seconds,
            settings={"gunicorn": " ".join(http_load.GUNICORN), "versions": http_load.versions()},
        )

    def close(self) -> None:
        self.engine.dispose()


def run(
    pg: Postgres,
    redis: Redis,
    workdir: Path,
    deliveries: int,
    rounds: int,
    seconds: float,
    warmup: float,
    log: Any,
) -> PixelResult:
    case = PixelCase(pg, redis, workdir, deliveries, log)
    try:
        case.prepare()
        log(f"  {deliveries:,} deliveries with signed pixel URLs")
        return case.measure(rounds, seconds, warmup)
    finally:
        case.close()
