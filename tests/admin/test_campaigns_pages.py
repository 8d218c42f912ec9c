"""The campaign pages as a marketer uses them: the guided flow saving each step, the live
audience count, scheduling in a time zone, the review that blocks what cannot be sent, the
progress panel and its controls, and the report once opens and clicks were flushed.

Sending runs through the real RQ worker (`work`) into the SMTP sink (`inbox`)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from html import unescape

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select, update

from mailer import tasks
from mailer.accounts.models import Role
from mailer.campaigns.models import Campaign, CampaignStatus, Delivery, Template
from mailer.extensions import jobs
from mailer.segments import service as segments
from mailer.tracking.bounces import record_bounce
from mailer.tracking.models import BounceKind, BounceSource
from tests.admin.conftest import csrf_of
from tests.campaigns.conftest import MJML, make_audience
from tests.inbox import html_of

READER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"}


@pytest.fixture
def marketer(staff_client):
    return staff_client(Role.MARKETER)


@pytest.fixture
def world(session):
    """Topic "news" with 3 readers, topic "offers" with 1, a template, a one-person segment."""
    news, _ = make_audience(session, 3, "news", "reader")
    offers, _ = make_audience(session, 1, "offers", "bargain")
    template = Template(name="Autumn", mjml=MJML)
    session.add(template)
    session.commit()
    segment = segments.create(
        session,
        "Reader one",
        {"all": [{"field": "email", "op": "starts_with", "value": "reader1"}]},
    )
    return {"news": news.id, "offers": offers.id, "template": template.id, "segment": segment.id}


def _post(client, path: str, data: dict, **kwargs):
    return client.post(
        path, data={"csrf_token": csrf_of(client, "/admin/campaigns/"), **data}, **kwargs
    )


CONTENT = {
    "name": "Autumn offer",
    "subject": "Autumn offer for {{ subscriber.first_name }}",
    "preheader": "Only this week",
    "from_name": "Shop",
    "from_email": "news@shop.example",
    "reply_to": "",
}


def _campaign(session, campaign_id: int) -> Campaign:
    session.expire_all()
    return session.get(Campaign, campaign_id)


def _draft(client, world) -> int:
    response = _post(client, "/admin/campaigns/new", {**CONTENT, "template_id": world["template"]})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(re.search(r"/admin/campaigns/(\d+)/audience", response.headers["Location"])[1])


def _count(client, campaign_id: int, topic: int, segment: int = 0) -> int:
    fragment = client.get(
        f"/admin/campaigns/{campaign_id}/audience/count?topic_id={topic}&segment_id={segment}",
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    return int(re.search(r'data-count="(\d+)"', fragment)[1])


def test_the_flow_saves_each_step_and_sends_to_the_chosen_audience(
    marketer, session, world, work, inbox
):
    new = marketer.get("/admin/campaigns/new").get_data(as_text=True)
    assert 'value="noreply@localhost"' in new  # the system sender is the default From
    campaign_id = _draft(marketer, world)
    draft = _campaign(session, campaign_id)
    assert (draft.status, draft.name, draft.preheader) == (
        CampaignStatus.DRAFT,
        "Autumn offer",
        "Only this week",
    )

    # The live count follows the choices before anything is saved.
    assert _count(marketer, campaign_id, world["news"]) == 3
    assert _count(marketer, campaign_id, world["news"], world["segment"]) == 1
    assert _count(marketer, campaign_id, world["offers"]) == 1
    step = _post(
        marketer,
        f"/admin/campaigns/{campaign_id}/audience",
        {"topic_id": world["news"], "segment_id": world["segment"]},
    )
    assert step.headers["Location"] == f"/admin/campaigns/{campaign_id}/tracking"
    step = _post(marketer, f"/admin/campaigns/{campaign_id}/tracking", {"track_clicks": "y"})
    assert step.headers["Location"] == f"/admin/campaigns/{campaign_id}/schedule"
    step = _post(
        marketer, f"/admin/campaigns/{campaign_id}/schedule", {"when": "now", "timezone": "UTC"}
    )
    assert step.headers["Location"] == f"/admin/campaigns/{campaign_id}/review"
    draft = _campaign(session, campaign_id)
    assert (draft.topic_id, draft.segment_id, draft.track_opens, draft.track_clicks) == (
        world["news"],
        world["segment"],
        False,
        True,
    )
    assert draft.send_at is None

    review = marketer.get(f"/admin/campaigns/{campaign_id}/review").get_data(as_text=True)
    missing = re.findall(r'<li class="missing" data-item="(\w+)"', review)
    assert missing == []
    assert re.search(r'<li class="advice" data-item="dkim"', review)  # advice, not a block
    assert "1 recipient" in review and "Send now" in review

    sent = _post(marketer, f"/admin/campaigns/{campaign_id}/send", {"mode": "now"})
    assert sent.headers["Location"] == f"/admin/campaigns/{campaign_id}"
    assert _campaign(session, campaign_id).status is CampaignStatus.SENDING
    panel = marketer.get(f"/admin/campaigns/{campaign_id}/progress").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in panel and "Pause" in panel

    work()
    panel = marketer.get(f"/admin/campaigns/{campaign_id}/progress").get_data(as_text=True)
    assert "hx-trigger" not in panel, "polling must stop once the campaign finished"
    assert "Finished" in panel and '<progress value="1" max="1">' in panel
    message = inbox.only()
    assert message["To"] == "Reader 1 <reader1@example.org>"
    assert message["Subject"] == "Autumn offer for Reader1"
    # Editing is over once it went out.
    again = marketer.get(f"/admin/campaigns/{campaign_id}/content")
    assert again.headers["Location"] == f"/admin/campaigns/{campaign_id}"


def test_a_step_with_errors_names_the_fields_and_keeps_what_was_typed(marketer, world, session):
    response = _post(
        marketer,
        "/admin/campaigns/new",
        {
            **CONTENT,
            "name": "",
            "from_email": "shop@",
            "from_name": "Evil\r\nBcc: x@y",
            "template_id": world["template"],
        },
    )
    assert response.status_code == 422
    page = unescape(response.get_data(as_text=True))
    assert "Give the campaign a name." in page
    assert "Enter a valid email address" in page
    assert "The name can't contain line breaks or control characters." in page
    assert 'value="shop@"' in page and 'value="Only this week"' in page
    assert session.scalars(select(Campaign)).all() == []


def _last_sunday_of_march(year: int) -> date:
    day = date(year, 3, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def test_scheduling_in_a_time_zone_shows_utc_and_local_time(marketer, world, session, app):
    year = datetime.now(UTC).year + 1
    gap_day = _last_sunday_of_march(year)  # Oslo's clocks skip 02:00-03:00
    campaign_id = _draft(marketer, world)
    path = f"/admin/campaigns/{campaign_id}/schedule"
    echo = marketer.get(
        f"{path}/echo?when=later&send_at={year}-06-01T09:30&timezone=Europe/Oslo"
    ).get_data(as_text=True)
    assert f"{year}-06-01 07:30 UTC" in echo and f"{year}-06-01 09:30 Europe/Oslo" in echo

    past = _post(
        marketer, path, {"when": "later", "send_at": "2001-01-01T10:00", "timezone": "UTC"}
    )
    assert past.status_code == 422 and "That time has passed" in past.get_data(as_text=True)
    gap = _post(
        marketer, path, {"when": "later", "send_at": f"{gap_day}T02:30", "timezone": "Europe/Oslo"}
    )
    assert gap.status_code == 422 and "does not exist in Europe/Oslo" in gap.get_data(as_text=True)

    saved = _post(
        marketer,
        path,
        {"when": "later", "send_at": f"{year}-06-01T09:30", "timezone": "Europe/Oslo"},
    )
    assert saved.status_code == 302
    draft = _campaign(session, campaign_id)
    assert draft.status is CampaignStatus.DRAFT  # only remembered until the review
    assert draft.send_at == datetime(year, 6, 1, 7, 30, tzinfo=UTC)
    page = marketer.get(path).get_data(as_text=True)
    assert f'value="{year}-06-01T09:30"' in page and f"{year}-06-01 09:30 Europe/Oslo" in page

    review = marketer.get(f"/admin/campaigns/{campaign_id}/review").get_data(as_text=True)
    assert f"Schedule for {year}-06-01 07:30 UTC" in review
    assert f"({year}-06-01 09:30 Europe/Oslo)" in review
    done = _post(marketer, f"/admin/campaigns/{campaign_id}/send", {"mode": "schedule"})
    assert done.headers["Location"] == f"/admin/campaigns/{campaign_id}"
    assert _campaign(session, campaign_id).status is CampaignStatus.SCHEDULED
    with app.app_context():
        registry = ScheduledJobRegistry(queue=jobs.queues[-1])
        assert any(
            jobs.queues[-1].fetch_job(j).func_name == tasks.START_CAMPAIGN
            for j in registry.get_job_ids()
        )
    page = marketer.get(f"/admin/campaigns/{campaign_id}").get_data(as_text=True)
    assert f"Goes out at <strong>{year}-06-01 07:30 UTC</strong>" in page


def test_the_review_blocks_what_cannot_be_sent(marketer, world, session):
    bare = Template(name="No way out", mjml=MJML.replace("{{ unsubscribe_url }}", "#"))
    session.add(bare)
    session.commit()
    campaign_id = _draft(marketer, world)
    _post(
        marketer,
        f"/admin/campaigns/{campaign_id}/content",
        {**CONTENT, "subject": "", "from_email": "", "template_id": bare.id},
    )
    empty, _ = make_audience(session, 0, "empty", "nobody")
    _post(marketer, f"/admin/campaigns/{campaign_id}/audience", {"topic_id": empty.id})
    review = marketer.get(f"/admin/campaigns/{campaign_id}/review").get_data(as_text=True)
    assert re.findall(r'<li class="missing" data-item="(\w+)"', review) == [
        "subject",
        "from",
        "unsubscribe",
        "audience",
    ]
    assert 'name="mode"' not in review
    refused = _post(marketer, f"/admin/campaigns/{campaign_id}/send", {"mode": "now"})
    assert refused.headers["Location"] == f"/admin/campaigns/{campaign_id}/review"
    page = marketer.get(refused.headers["Location"]).get_data(as_text=True)
    assert "Subject set: not yet." in page
    assert _campaign(session, campaign_id).status is CampaignStatus.DRAFT


def test_pause_resume_and_cancel_act_through_the_lifecycle(marketer, world, session, work, inbox):
    campaign_id = _draft(marketer, world)
    _post(marketer, f"/admin/campaigns/{campaign_id}/send", {"mode": "now"})
    paused = _post(marketer, f"/admin/campaigns/{campaign_id}/pause", {})
    assert paused.headers["Location"] == f"/admin/campaigns/{campaign_id}"
    assert _campaign(session, campaign_id).status is CampaignStatus.PAUSED
    work()  # the start job finds it paused: nobody gets mail
    assert inbox.messages() == []
    panel = marketer.get(f"/admin/campaigns/{campaign_id}/progress").get_data(as_text=True)
    assert "Resume" in panel and "Pause</button>" not in panel
    again = _post(marketer, f"/admin/campaigns/{campaign_id}/pause", {}, follow_redirects=True)
    assert "Cannot pause a campaign that is paused" in again.get_data(as_text=True)

    _post(marketer, f"/admin/campaigns/{campaign_id}/resume", {})
    assert _campaign(session, campaign_id).status is CampaignStatus.SENDING
    work()
    assert _campaign(session, campaign_id).status is CampaignStatus.SENT
    assert len(inbox.messages()) == 3

    other = _draft(marketer, world)
    _post(marketer, f"/admin/campaigns/{other}/send", {"mode": "now"})
    cancelled = _post(marketer, f"/admin/campaigns/{other}/cancel", {}, follow_redirects=True)
    assert "Cancelled: recipients not yet sent to are skipped." in cancelled.get_data(as_text=True)
    assert _campaign(session, other).status is CampaignStatus.CANCELLED
    work()
    assert len(inbox.messages()) == 3


def test_a_test_send_from_the_review_is_marked(marketer, world, session, inbox):
    campaign_id = _draft(marketer, world)
    response = _post(
        marketer,
        f"/admin/campaigns/{campaign_id}/test",
        {"addresses": "boss@example.org"},
        headers={"HX-Request": "true"},
    )
    assert "Test to boss@example.org" in response.get_data(as_text=True)
    message = inbox.only()
    assert message["Subject"].startswith("[Test] Autumn offer") and message["X-Mailer-Test"] == "1"
    assert _campaign(session, campaign_id).status is CampaignStatus.DRAFT


def _path(url: str) -> str:
    return "/" + unescape(url).split("://", 1)[1].split("/", 1)[1]


def test_the_report_shows_opens_clicks_bounces_and_unsubscribes(
    marketer, world, session, work, inbox, app, client
):
    campaign_id = _draft(marketer, world)
    _post(marketer, f"/admin/campaigns/{campaign_id}/send", {"mode": "now"})
    work()
    # Read an hour later: hits within seconds of delivery are a machine's, not a person's.
    session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id)
        .values(sent_at=datetime.now(UTC) - timedelta(hours=1))
    )
    session.commit()
    messages = {m["To"].addresses[0].username: m for m in inbox.messages()}
    assert set(messages) == {"reader0", "reader1", "reader2"}
    for who in ("reader0", "reader1"):
        html = html_of(messages[who])
        client.get(_path(re.search(r'src="([^"]+/t/o/[^"]+)"', html)[1]), headers=READER)
    pixel = re.search(r'src="([^"]+/t/o/[^"]+)"', html_of(messages["reader2"]))[1]
    client.get(  # Apple Mail Privacy Protection: a machine
        _path(pixel),
        headers={"User-Agent": "Mozilla/5.0"},
        environ_base={"REMOTE_ADDR": "17.1.2.3"},
    )
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', html_of(messages["reader0"]))[1]
    assert client.get(_path(click), headers=READER).status_code == 302
    unsubscribe = messages["reader1"]["List-Unsubscribe"].split(",")[0].strip().strip("<>")
    assert (
        client.post(_path(unsubscribe), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    )
    with app.app_context():
        tasks.enqueue(tasks.FLUSH_TRACKING)
    work()
    delivery = (
        session.execute(select(Delivery.id).where(Delivery.campaign_id == campaign_id))
        .scalars()
        .first()
    )
    record_bounce(
        session,
        delivery_id=delivery,
        email=None,
        kind=BounceKind.SOFT,
        source=BounceSource.SMTP,
        status="4.2.2",
        detail="mailbox full",
    )
    session.commit()

    page = marketer.get(f"/admin/campaigns/{campaign_id}/report").get_data(as_text=True)

    def figure(name: str) -> str:
        return re.search(rf'data-figure="{name}"><span class="value">([^<]+)<', page)[1]

    assert figure("sent") == "3"
    assert figure("human-opens") == "2" and "(66.7%)" in page
    assert figure("machine-opens") == "1"
    assert figure("clicks") == "1"
    assert figure("bounces") == "1" and figure("unsubscribes") == "1"
    assert figure("complaints") == "0"
    assert page.count('<svg class="chart"') == 3  # opens, clicks, per link
    assert "<title>Opens per hour (UTC)</title>" in page
    assert re.search(r"<th>Human opens \(all\)</th><td class=\"num\">2</td>", page)
    assert re.search(r"<th>Machine opens \(all\)</th><td class=\"num\">1</td>", page)
    assert re.search(r"shop\.example/offer\?src=mail</td>\s*<td class=\"num\">1</td>", page)


def test_the_list_shows_status_audience_and_human_rates(marketer, world, session, work):
    sent_id = _draft(marketer, world)
    _post(marketer, f"/admin/campaigns/{sent_id}/send", {"mode": "now"})
    work()
    session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == sent_id, Delivery.id % 3 == 1)
        .values(opened_at=datetime.now(UTC))
    )
    session.commit()
    draft_id = _draft(marketer, world)
    page = marketer.get("/admin/campaigns/").get_data(as_text=True)
    rows = re.findall(r'<tr>\s*<td><a href="/admin/campaigns/(\d+)">.*?</tr>', page, re.S)
    assert rows == [str(draft_id), str(sent_id)]
    sent_row = re.search(rf'campaigns/{sent_id}">.*?</tr>', page, re.S)[0]
    cells = re.findall(r'<td class="num">([^<]+)</td>', sent_row)
    assert cells == ["3", "3", "33.3%", "0.0%"]
    assert '<span class="badge sent">sent</span>' in sent_row
    drafts_only = marketer.get("/admin/campaigns/?status=draft").get_data(as_text=True)
    assert f'/admin/campaigns/{draft_id}"' in drafts_only
    assert f'/admin/campaigns/{sent_id}"' not in drafts_only


def test_leaving_a_step_through_the_step_list_saves_it_first(marketer, world, session):
    campaign_id = _draft(marketer, world)
    page = marketer.get(f"/admin/campaigns/{campaign_id}/content").get_data(as_text=True)
    assert 'form="step-form" name="goto" value="review"' in page
    left = _post(
        marketer,
        f"/admin/campaigns/{campaign_id}/content",
        {
            **CONTENT,
            "subject": "Changed on the way out",
            "template_id": world["template"],
            "goto": "review",
        },
    )
    assert left.headers["Location"] == f"/admin/campaigns/{campaign_id}/review"
    assert _campaign(session, campaign_id).subject == "Changed on the way out"


def test_a_subject_reaching_for_internals_is_refused_at_the_first_step(marketer, world, session):
    response = _post(
        marketer,
        "/admin/campaigns/new",
        {**CONTENT, "subject": "Hi {{ subscriber.__class__ }}", "template_id": world["template"]},
    )
    assert response.status_code == 422
    page = unescape(response.get_data(as_text=True))
    assert re.search(r'id="subject-error">\'__class__\' cannot be used in a template', page)
    assert 'value="Hi {{ subscriber.__class__ }}"' in page
    assert session.scalars(select(Campaign)).all() == []
