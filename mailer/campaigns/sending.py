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

The parts: `leases` claims, renews and releases pages and recovers lost messages; `marks` is
the per-message durable statement; `outcomes` writes what SMTP answered; `pages` reads a
claimed page. This module is the loop that runs them in the order the protocol needs.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from mailer.campaigns import leases, outcomes, pages
from mailer.campaigns.leases import Lease
from mailer.campaigns.marks import Marks
from mailer.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from mailer.campaigns.outcomes import Answer
from mailer.campaigns.pacing import Pacer
from mailer.config import Settings
from mailer.database import utcnow
from mailer.delivery.pool import Outcome, SmtpConnection
from mailer.delivery.transport import SmtpTarget
from mailer.tokens import Tokens

log = logging.getLogger(__name__)

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
        self.lease = Lease(settings, campaign_id)
        self.counts: dict[str, int] = {}
        self._status_checked = 0.0
        self._status_ok = True

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
                        leases.recover_lost(session, self.settings, self.campaign_id)
                        ids = self.lease.claim_page(session)
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

    # -- finishing -----------------------------------------------------------------------------

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
                .where(Delivery.id.in_(skipped), Delivery.claim == self.lease.token)
                .values(status=DeliveryStatus.SKIPPED, skip_reason=reason)
                .execution_options(synchronize_session=False)
            )
            self._count("skipped", len(skipped))
        session.commit()

        previous: Answer | None = None
        # The next recipient's message, rendered while the database commits this one's mark.
        ahead: tuple[int, object] | None = None
        try:
            for index, (delivery_id, attempts, recipient) in enumerate(todo):
                if self.pacer.limited:
                    # Record the outcome in hand before any wait: a long wait must never
                    # leave a finished message looking like one lost on the wire.
                    self._record(session, marks, previous)
                    previous = None
                self.lease.renew(session)
                go = self._still_sending(session) and self.pacer.acquire(
                    lambda: self._still_sending(session)
                )
                if go is not True:
                    self._record(session, marks, previous)
                    previous = None
                    self.lease.release(session)
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
                        .where(Delivery.id == delivery_id, Delivery.claim == self.lease.token)
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
                marks.send(self.lease.token, utcnow(), sent_id, delivery_id)
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
                    self.lease.release(session)
                    return self._result(Next.LATER, utcnow() + outcomes.backoff(1) / 3)
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

    def _record(self, session: Session, marks: Marks, previous: Answer | None) -> None:
        """Commit one message's outcome on its own (before a wait, a stop, or a mark that
        cannot carry it)."""
        if previous is None:
            return
        if previous[3].outcome is Outcome.SENT:
            marks.step(self.lease.token, utcnow(), previous[0], None)
            self._count("sent")
            return
        self._count(
            outcomes.write(session, self.settings, self.campaign_id, self.lease.token, previous)
        )
        session.commit()
