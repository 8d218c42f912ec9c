"""The campaign sender: claim recipients in pages, send each exactly once, record as it goes.

Exactly once, and what "once" costs:
- A sender claims a page of pending deliveries with its own random claim token (a fencing
  token). Claims expire (`claim_lease`), so a dead sender's page returns to the pool; every
  write afterwards is conditional on the token, so a slow sender that lost its page writes
  nothing and sends nothing more.
- Just before SMTP, the delivery is marked `sending` in a committed transaction (the same
  one that records the previous message's outcome: one statement, see `marks`). After SMTP,
  the outcome is known in memory and written with the next message's mark (or at the end
  of the page; a refusal or a retry is committed on its own just before the next mark).
- A sender killed at any moment therefore leaves at most one delivery `sending`: the one on
  the wire. After `sending_lease` it becomes `unknown` (it may have been delivered) and is
  never resent. Every other delivery of its page is `pending` again or already final. A
  connection lost after the message body was sent is `unknown` for the same reason.
Listmonk checkpoints a batch when it is read, so a crash skips (or, on resume, duplicates)
everything in memory; here the state is per recipient and written when it is sent.
"""

from __future__ import annotations

import enum
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailer.campaigns import pages
from mailer.campaigns.marks import Marks
from mailer.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from mailer.campaigns.pacing import Pacer
from mailer.config import Settings
from mailer.database import utcnow
from mailer.delivery.pool import Outcome, Result, SmtpConnection
from mailer.delivery.transport import SmtpTarget
from mailer.tokens import Tokens

log = logging.getLogger(__name__)

# Temporary failures: seconds before the next try, by attempt number.
BACKOFF = (30, 120, 600, 1800, 3600, 7200)
# How often a sender looks at the campaign's status (pause and cancel take effect this fast).
STATUS_EVERY = 0.5


class Next(enum.Enum):
    DONE = "done"  # nothing more for this sender
    AGAIN = "again"  # time budget used up: enqueue another sender now
    LATER = "later"  # come back at `at` (retries due, or others' claims may go stale)


@dataclass
class RunResult:
    next: Next
    at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)


def backoff(attempt: int) -> timedelta:
    return timedelta(seconds=BACKOFF[min(max(attempt, 1), len(BACKOFF)) - 1])


class Sender:
    """One run of one sender job over one campaign."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        tokens: Tokens,
        campaign_id: int,
        time_budget: float = 60.0,
        pacer: Pacer | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.tokens = tokens
        self.campaign_id = campaign_id
        self.time_budget = time_budget
        self.pacer = pacer or Pacer(settings)
        self.claim = secrets.token_hex(8)
        self.counts: dict[str, int] = {}
        self._status_checked = 0.0
        self._status_ok = True
        self._renewed = 0.0

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> RunResult:
        from mailer.campaigns.rendering import PreparedCampaign

        # The sender keeps its connections for the whole run: one for its session (claims,
        # pages, checks), one in autocommit mode for the per-message mark (see `marks`).
        # Checking a connection out of the pool per transaction would ping the server first.
        with self.sessions() as probe:
            engine = probe.get_bind()
        with engine.connect() as control, self.sessions(bind=control) as session:
            if control.dialect.name == "postgresql":
                # The sender reads and claims its pages by primary key, 200 ids at a time, in
                # a table that bloats as it sends (each recipient leaves three row versions
                # until vacuum). Priced at the default 4 per random page, 200 index lookups
                # lost to reading the whole table (2.4 ms a page at 20,000 recipients, 5.4
                # at 50,000, 0.8 with this); the pages it reads are in memory anyway.
                control.exec_driver_sql("SET random_page_cost = 1.1")
                control.commit()
            campaign = session.get(Campaign, self.campaign_id)
            if campaign is None or campaign.status is not CampaignStatus.SENDING:
                return RunResult(Next.DONE)
            if campaign.resolved_at is None:
                # Recipients not known yet: the start job resolves them, then enqueues us.
                return RunResult(Next.DONE)
            prepared = PreparedCampaign.from_campaign(
                campaign, campaign.topic, self.settings, self.tokens
            )
            topic_id = campaign.topic_id
            session.commit()
            deadline = time.monotonic() + self.time_budget
            marks = Marks(engine)
            try:
                with SmtpConnection(SmtpTarget.from_url(self.settings.smtp_url)) as smtp:
                    while True:
                        if time.monotonic() > deadline:
                            return self._result(Next.AGAIN)
                        if not self._still_sending(session, force=True):
                            return self._result(Next.DONE)
                        self._recover_lost(session)
                        ids = self._claim_page(session)
                        if not ids:
                            return self._finish_or_wait(session)
                        stop = self._send_page(session, marks, smtp, prepared, topic_id, ids)
                        if stop is not None:
                            return stop
            finally:
                marks.close()

    def _result(self, nxt: Next, at: datetime | None = None) -> RunResult:
        return RunResult(nxt, at, dict(self.counts))

    def _count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def _still_sending(self, session: Session, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._status_checked >= STATUS_EVERY:
            status = session.scalar(select(Campaign.status).where(Campaign.id == self.campaign_id))
            session.commit()
            self._status_ok = status is CampaignStatus.SENDING
            self._status_checked = now
        return self._status_ok

    # -- claiming ---------------------------------------------------------------------------

    def _page_size(self) -> int:
        size = self.settings.send_batch_size
        if self.settings.send_rate_per_hour > 0:
            size = min(size, self.settings.send_rate_per_hour)
        if self.settings.send_rate_per_second > 0:
            # Under a rate limit, claim no more than a quarter of the lease's worth.
            size = min(
                size, max(1, self.settings.send_rate_per_second * self.settings.claim_lease // 4)
            )
        return size

    def _claim_page(self, session: Session) -> list[int]:
        """Claim a page under a fresh token, so two senders never hold the same recipient.

        PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, then UPDATE those ids in the same
        transaction (as one statement with IN (subquery) the planner re-ran the locking
        subquery per row: a minute per page at 20,000 recipients). Any claimable rows will
        do, in no particular order: ORDER BY id walked the primary key past every recipient
        already sent (94 ms a page half-way through 200,000 recipients, quadratic in the
        campaign's size), where an unordered LIMIT stops at the first ones it finds. The page
        is still sent in id order. SQLite: one UPDATE with the subquery; SQLite runs one writer
        at a time, so it is atomic as it stands."""
        now = utcnow()
        stale = now - timedelta(seconds=self.settings.claim_lease)
        claimable = (
            Delivery.campaign_id == self.campaign_id,
            Delivery.status == DeliveryStatus.PENDING,
            (Delivery.claim.is_(None)) | (Delivery.claimed_at < stale),
            (Delivery.retry_at.is_(None)) | (Delivery.retry_at <= now),
        )
        page = select(Delivery.id).where(*claimable).limit(self._page_size())
        self.claim = secrets.token_hex(8)
        self._renewed = time.monotonic()
        if session.get_bind().dialect.name == "postgresql":
            ids = sorted(session.scalars(page.with_for_update(skip_locked=True)))
            if ids:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(ids))
                    .values(claim=self.claim, claimed_at=now)
                    .execution_options(synchronize_session=False)
                )
            session.commit()
            return ids
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(page.order_by(Delivery.id).scalar_subquery()), *claimable)
            .values(claim=self.claim, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        ids = session.scalars(select(Delivery.id).where(*self._mine()).order_by(Delivery.id)).all()
        session.commit()
        return list(ids)

    def _mine(self) -> tuple:
        """The page this sender holds (campaign first: the (campaign, status) index serves it)."""
        return (
            Delivery.campaign_id == self.campaign_id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.claim == self.claim,
        )

    def _recover_lost(self, session: Session) -> None:
        """Deliveries left `sending` by a sender that died mid-SMTP: maybe delivered."""
        stuck = utcnow() - timedelta(seconds=self.settings.sending_lease)
        result = session.execute(
            update(Delivery)
            .where(
                Delivery.campaign_id == self.campaign_id,
                Delivery.status == DeliveryStatus.SENDING,
                Delivery.claimed_at < stuck,
            )
            .values(
                status=DeliveryStatus.UNKNOWN,
                error="the sender stopped during SMTP; the message may have been delivered",
            )
            .execution_options(synchronize_session=False)
        )
        session.commit()
        if result.rowcount:
            log.warning("campaign %s: %d deliveries unknown", self.campaign_id, result.rowcount)

    def _renew(self, session: Session) -> None:
        """Keep the page's claim fresh while a slow server or a rate limit stretches it."""
        now = time.monotonic()
        if now - self._renewed < self.settings.claim_lease / 4:
            return
        self._renewed = now
        session.execute(
            update(Delivery)
            .where(*self._mine())
            .values(claimed_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        session.commit()

    def _release(self, session: Session) -> None:
        session.execute(
            update(Delivery)
            .where(*self._mine())
            .values(claim=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()

    def _finish_or_wait(self, session: Session) -> RunResult:
        open_ = session.execute(
            select(
                func.count(),
                func.min(Delivery.retry_at),
                func.min(Delivery.claimed_at),
            ).where(
                Delivery.campaign_id == self.campaign_id,
                Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)),
            )
        ).one()
        remaining, next_retry, oldest_claim = open_
        if not remaining:
            session.execute(
                update(Campaign)
                .where(
                    Campaign.id == self.campaign_id,
                    Campaign.status == CampaignStatus.SENDING,
                    Campaign.resolved_at.is_not(None),
                )
                .values(status=CampaignStatus.SENT, finished_at=utcnow())
            )
            session.commit()
            return self._result(Next.DONE)
        session.commit()
        # Come back when a retry is due or another sender's claim could have gone stale.
        times = []
        if next_retry is not None:
            times.append(next_retry)
        if oldest_claim is not None:
            lease = max(self.settings.claim_lease, self.settings.sending_lease)
            times.append(oldest_claim + timedelta(seconds=lease + 1))
        at = min(times) if times else utcnow() + timedelta(seconds=self.settings.claim_lease)
        return self._result(Next.LATER, max(at, utcnow() + timedelta(seconds=1)))

    # -- one page ---------------------------------------------------------------------------

    def _send_page(
        self,
        session: Session,
        marks: Marks,
        smtp: SmtpConnection,
        prepared: object,
        topic_id: int,
        ids: list[int],
    ) -> RunResult | None:
        page = pages.load(session, topic_id, ids)
        todo = page.todo
        for reason, skipped in page.skips.items():
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(skipped), Delivery.claim == self.claim)
                .values(status=DeliveryStatus.SKIPPED, skip_reason=reason)
                .execution_options(synchronize_session=False)
            )
            self._count("skipped", len(skipped))
        session.commit()

        previous: tuple[int, int, object, Result] | None = None
        # The next recipient's message, rendered while the database commits this one's mark.
        ahead: tuple[int, object] | None = None
        try:
            for index, (delivery_id, attempts, recipient) in enumerate(todo):
                if self.pacer.limited:
                    # Record the outcome in hand before any wait: a long wait must never
                    # leave a finished message looking like one lost on the wire.
                    self._record(session, marks, previous)
                    previous = None
                self._renew(session)
                go = self._still_sending(session) and self.pacer.acquire(
                    lambda: self._still_sending(session)
                )
                if go is not True:
                    self._record(session, marks, previous)
                    previous = None
                    self._release(session)
                    if go is False:  # paused or cancelled
                        return self._result(Next.DONE)
                    # A closed window (hourly cap): hand the page back, come back when it opens.
                    return self._result(Next.LATER, utcnow() + timedelta(seconds=float(go)))
                if ahead is not None and ahead[0] == index:
                    rendered = ahead[1]
                else:
                    rendered = self._render(prepared, recipient)
                ahead = None
                if isinstance(rendered, Exception):  # one bad profile must not stop the campaign
                    log.error(
                        "campaign %s: rendering delivery %s failed",
                        self.campaign_id,
                        delivery_id,
                        exc_info=rendered,
                    )
                    self._record(session, marks, previous)
                    previous = None
                    session.execute(
                        update(Delivery)
                        .where(Delivery.id == delivery_id, Delivery.claim == self.claim)
                        .values(
                            status=DeliveryStatus.FAILED,
                            error=f"rendering failed: {rendered}"[:1000],
                        )
                    )
                    session.commit()
                    self._count("failed")
                    continue
                # The previous outcome and this mark: one committed statement when the previous
                # message was accepted (the usual case), else the outcome is committed first.
                sent_id = None
                if previous is not None and previous[3].outcome is Outcome.SENT:
                    sent_id = previous[0]
                    self._count("sent")
                else:
                    self._record(session, marks, previous)
                previous = None
                marks.send(self.claim, utcnow(), sent_id, delivery_id)
                if index + 1 < len(todo):
                    ahead = (index + 1, self._render(prepared, todo[index + 1][2]))
                # Durable before a byte goes out.
                if not marks.result():
                    continue  # cancelled, or our claim went stale and someone else has it
                result = smtp.send(
                    rendered.envelope_from,  # type: ignore[attr-defined]
                    rendered.envelope_to,  # type: ignore[attr-defined]
                    rendered.data,  # type: ignore[attr-defined]
                    rendered.smtputf8,  # type: ignore[attr-defined]
                )
                previous = (delivery_id, attempts + 1, recipient, result)
                if result.connection_lost and result.outcome is Outcome.TEMPORARY:
                    # The server is struggling: back off as a whole, not recipient by recipient.
                    self._record(session, marks, previous)
                    previous = None
                    self._release(session)
                    return self._result(Next.LATER, utcnow() + backoff(1) / 3)
        finally:
            self._record(session, marks, previous)
        return None

    @staticmethod
    def _render(prepared: object, recipient: object) -> object:
        """The recipient's message, or the exception that rendering it raised (its data broke
        the template, or a name holds a line break): that delivery fails, the page goes on."""
        try:
            return prepared.render(recipient)  # type: ignore[attr-defined]
        except Exception as exc:
            return exc

    def _record(
        self, session: Session, marks: Marks, previous: tuple[int, int, object, Result] | None
    ) -> None:
        """Commit one message's outcome on its own (before a wait, a stop, or a mark that
        cannot carry it)."""
        if previous is None:
            return
        if previous[3].outcome is Outcome.SENT:
            marks.step(self.claim, utcnow(), previous[0], None)
            self._count("sent")
            return
        self._write(session, previous)
        session.commit()

    def _write(self, session: Session, previous: tuple[int, int, object, Result] | None) -> None:
        """Record one message's outcome in the session (not committed). Accepted messages
        usually go through `Marks.step` instead, with the next message's mark."""
        if previous is None:
            return
        delivery_id, attempts, recipient, result = previous
        mine = (
            Delivery.id == delivery_id,
            Delivery.claim == self.claim,
            Delivery.status == DeliveryStatus.SENDING,
        )
        now = utcnow()
        if result.outcome is Outcome.SENT:
            values: dict[str, object] = {
                "status": DeliveryStatus.SENT,
                "sent_at": now,
                "error": None,
            }
            self._count("sent")
        elif result.outcome is Outcome.UNKNOWN:
            values = {"status": DeliveryStatus.UNKNOWN, "error": result.detail[:1000]}
            self._count("unknown")
        elif result.outcome is Outcome.PERMANENT:
            values = {"status": DeliveryStatus.FAILED, "error": result.detail[:1000]}
            self._count("failed")
            self._bounce(session, delivery_id, recipient, result)
        elif attempts >= self.settings.send_max_attempts:
            values = {
                "status": DeliveryStatus.FAILED,
                "error": f"gave up after {attempts} temporary failures: {result.detail}"[:1000],
            }
            self._count("failed")
        else:
            values = {
                "status": DeliveryStatus.PENDING,
                "claim": None,
                "claimed_at": None,
                "retry_at": now + backoff(attempts),
                "error": result.detail[:1000],
            }
            self._count("retry")
        session.execute(
            update(Delivery)
            .where(*mine)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    def _bounce(
        self, session: Session, delivery_id: int, recipient: object, result: Result
    ) -> None:
        from mailer.tracking import bounces

        bounces.record_smtp_refusal(
            session,
            delivery_id=delivery_id,
            campaign_id=self.campaign_id,
            subscriber_id=recipient.subscriber_id,  # type: ignore[attr-defined]
            email=recipient.email,  # type: ignore[attr-defined]
            code=result.code,
            detail=result.detail,
        )
