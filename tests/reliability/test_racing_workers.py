"""Two workers racing on the same campaign's pages: nobody gets a message twice, nobody is lost.

Real `mailer worker` processes on the suite's database (SQLite on the sqlite run, PostgreSQL on
the postgresql run: the claim differs, `FOR UPDATE SKIP LOCKED` against one UPDATE, and so
does the per-message mark), real Redis, a real SMTP server on loopback that keeps every
message it accepted, so "once" is checked from the receiving side.

- Two sender jobs enqueued at once, two workers started together, pages of five: both claim
  pages side by side for the whole campaign.
- A deterministic takeover: worker A is frozen (SIGSTOP) holding a claimed page, its lease
  runs out, worker B takes the page over and sends it; then A is thawed (SIGCONT) and carries
  on with its page. Its marks are fenced by its old claim token, so it must send none of it.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.campaigns.models import CampaignStatus, DeliveryStatus
from tests.campaigns.conftest import make_audience, make_campaign
from tests.campaigns.processes import wait_for
from tests.reliability import racing
from tests.reliability.conftest import Tally


@pytest.fixture
def racing_fleet(run_fleet):
    """`racing_fleet(**env)` → (app, Processes) on the run's database (fast leases: a lost
    page is taken over within seconds)."""

    def build(**overrides: str):
        app, procs, _env = run_fleet(**overrides)
        return app, procs

    return build


def _start_sending(app, recipients: int) -> tuple[int, object]:
    """An audience, a campaign and a marketer's key; the campaign sent through the API."""
    session = app.extensions["mailer.db"]()
    topic, _ = make_audience(session, recipients)
    campaign = make_campaign(session, topic)
    _, key = create_api_key(session, Role.MARKETER, "racing workers")
    campaign_id = campaign.id
    session.close()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}

    def get(path: str):
        return client.get(path, headers=headers)

    response = client.post(f"/api/v1/campaigns/{campaign_id}/send", headers=headers)
    assert response.status_code == 202, response.get_json()
    return campaign_id, get


def _check_outcome(
    app, campaign_id: int, get, smtp_server, recorder: Tally, recipients: int
) -> tuple[list[racing.Row], Counter[str]]:
    """Every delivery in one final state, each recipient received at most once, nobody
    marked sent and missing, the report agreeing with the rows. Fed to the suite summary."""
    rows = racing.rows(app, campaign_id)
    received = racing.received(smtp_server)
    by_status = Counter(r.status for r in rows)
    sent = {r.email for r in rows if r.status is DeliveryStatus.SENT}
    unknown = {r.email for r in rows if r.status is DeliveryStatus.UNKNOWN}
    duplicates = {a: n for a, n in received.items() if n > 1}
    lost = (sent - set(received)) | {r.email for r in rows if r.status not in racing.FINAL}
    recorder.recipients_checked += recipients
    recorder.duplicates += len(duplicates)
    recorder.losses += len(lost) + recipients - len(rows)

    assert len(rows) == recipients
    assert not duplicates, f"sent twice: {duplicates}"
    assert not lost, f"not sent, or marked sent and never received: {sorted(lost)[:10]}"
    assert set(by_status) <= {DeliveryStatus.SENT, DeliveryStatus.UNKNOWN}, by_status
    assert set(received) <= sent | unknown, "the server got mail for a delivery not sent"
    report = get(f"/api/v1/campaigns/{campaign_id}/report").get_json()
    assert report["status"] == "sent"
    assert report["deliveries"]["sent"] == len(sent)
    assert report["deliveries"]["unknown"] == len(unknown)
    by_value = {s.value: n for s, n in by_status.items()}
    assert report["deliveries"] == {**dict.fromkeys(report["deliveries"], 0), **by_value} | {
        "total": recipients
    }
    return rows, received


def test_two_workers_claiming_pages_side_by_side_send_each_message_once(
    racing_fleet, smtp_server, recorder
):
    recipients = 600
    # The start job enqueues the campaign's sender job twice at once; pages of five.
    app, procs = racing_fleet(MAILER_SEND_BATCH_SIZE="5", MAILER_SEND_JOBS="2")
    smtp_server.behaviour.data_delay = 0.001
    campaign_id, get = _start_sending(app, recipients)
    procs.start("worker")
    procs.start("worker")
    procs.start("cron")
    try:
        wait_for(
            lambda: racing.status(app, campaign_id) is CampaignStatus.SENT, 240, "the end", 0.5
        )
    except AssertionError:
        raise AssertionError(f"{racing.counts(app, campaign_id)}\n{procs.logs()}") from None
    recorder.fault("two workers racing on one campaign (pages of 5)")

    _, received = _check_outcome(app, campaign_id, get, smtp_server, recorder, recipients)
    # No fault was injected: nobody is in doubt.
    assert len(received) == recipients
    # The race was real: two workers sent, at the same time.
    runs = [r for r in racing.sender_runs(app) if r.counts.get("sent")]
    workers = {r.worker for r in runs}
    assert len(workers) == 2, runs
    first, second = (min(runs, key=lambda r: r.started), max(runs, key=lambda r: r.started))
    assert second.started < first.ended, "the two senders never ran side by side"
    recorder.notes.append(
        "two racing workers: "
        + ", ".join(
            f"{sum(r.counts.get('sent', 0) for r in runs if r.worker == w)} sent"
            for w in sorted(workers)
        )
    )


def test_a_worker_frozen_mid_page_loses_it_and_sends_none_of_it_when_thawed(
    racing_fleet, smtp_server, recorder
):
    """A frozen holding a page; B takes it over; B frozen holding it; A thawed runs through
    its page (every mark fenced); B thawed finishes. Each step waits for the last one."""
    # Two pages of 100: A's, and the one B sends while A's lease runs out (so that when B
    # holds A's page there is nothing else left to claim). A server slow enough for a stop to
    # land mid-page; a lease long enough that A, once thawed, runs through its page (well
    # under a second) long before B's claim could go stale.
    recipients = 200
    # One sender per worker, so that "A's page" is one page under one claim token.
    app, procs = racing_fleet(
        MAILER_SEND_BATCH_SIZE="100",
        MAILER_CLAIM_LEASE="5",
        MAILER_SENDING_LEASE="10",
        MAILER_SEND_CONCURRENCY="1",
    )
    smtp_server.behaviour.data_delay = 0.02
    campaign_id, get = _start_sending(app, recipients)
    worker_a = procs.start("worker")
    wait_for(lambda: len(smtp_server.received) >= 10, 60, "worker A to start sending")

    # 1. A stops holding a page: claimed, partly sent.
    page_a = racing.freeze_holding_a_page(app, worker_a, campaign_id, at_least=40)
    recorder.fault("worker stopped (SIGSTOP) holding a claimed page")
    jobs_of_a = racing.running_senders(app)
    assert len(jobs_of_a) == 1, jobs_of_a
    (token_a,) = {claim for _, claim in page_a.values()}
    # A's message on the wire when it stopped, if any: the only one of its page it may send.
    on_the_wire = {i for i, (status, _) in page_a.items() if status is DeliveryStatus.SENDING}
    lost_page = set(page_a) - on_the_wire
    assert len(on_the_wire) <= 1

    # 2. A's lease runs out; B takes A's page over under a claim of its own, and stops too.
    worker_b = procs.start("worker")
    procs.start("cron")

    def taken_over() -> bool:
        now = racing.held(app, campaign_id)
        return all(now.get(i, (None, None))[1] != token_a for i in lost_page)

    wait_for(taken_over, 60, "worker B to take A's page over", 0.02)
    page_b = racing.freeze_holding_a_page(app, worker_b, campaign_id, at_least=10, among=lost_page)
    recorder.fault("worker stopped (SIGSTOP) holding a page taken over from another")
    held_by_b = {
        i
        for i, (status, claim) in page_b.items()
        if i in lost_page and status is DeliveryStatus.PENDING and claim != token_a
    }
    assert len(held_by_b) >= 10

    # 3. A carries on with its page while B is stopped: every mark it tries is fenced by its
    # old claim token, so it sends nothing of it and leaves B's claims alone.
    before = racing.received(smtp_server)
    racing.thaw(worker_a)
    recorder.fault("worker resumed (SIGCONT) after its page was taken over")
    wait_for(lambda: "started" not in racing.job_statuses(app, jobs_of_a), 60, "A's job to end")
    time.sleep(0.5)  # a message A might still be writing reaches the server
    assert racing.job_statuses(app, jobs_of_a) == {"finished"}, procs.logs()
    by_a = racing.received(smtp_server) - before
    email = {r.id: r.email for r in racing.rows(app, campaign_id)}
    assert not set(by_a) & {email[i] for i in lost_page}, f"A sent B's recipients: {by_a}"
    # A may go on to recipients nobody had claimed yet (the rest of the campaign): that is
    # its job. Whether any of them was sent twice is checked at the end, for everyone.
    still = racing.held(app, campaign_id)
    assert all(still[i] == page_b[i] for i in held_by_b), "A touched the page B holds"

    # 4. B carries on and finishes the campaign.
    racing.thaw(worker_b)
    recorder.fault("worker resumed (SIGCONT) holding a page it had taken over")
    try:
        wait_for(
            lambda: racing.status(app, campaign_id) is CampaignStatus.SENT, 120, "the end", 0.5
        )
    except AssertionError:
        raise AssertionError(f"{racing.counts(app, campaign_id)}\n{procs.logs()}") from None
    assert worker_a.poll() is None and worker_b.poll() is None, procs.logs()

    rows, received = _check_outcome(app, campaign_id, get, smtp_server, recorder, recipients)
    final = {r.id: r for r in rows}
    # A's lost page: sent once each, under another claim than A's.
    assert all(final[i].status is DeliveryStatus.SENT for i in lost_page)
    assert all(final[i].claim != token_a for i in lost_page)
    assert all(received[email[i]] == 1 for i in lost_page)
    recorder.notes.append(
        f"page taken over from a stopped worker: {len(lost_page)} recipients sent by the "
        f"other, {len(held_by_b)} of them held by it while the first ran through its page; "
        f"{len(on_the_wire)} on the wire at the stop ({sum(by_a.values())} sent after it)"
    )
