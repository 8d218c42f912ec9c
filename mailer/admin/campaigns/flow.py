"""The guided flow for a new or draft campaign: content, audience, tracking, schedule.

Each step saves the draft when it is submitted (`drafts.create`/`update`, `planning.plan`),
so leaving half-way loses nothing; a step with errors is shown again with what was typed.
Only drafts and scheduled campaigns can be changed (`drafts.EDITABLE`); the others are sent
to their campaign page. The fifth step, the review, is in `review.py`.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from flask import flash, redirect, render_template, request, session, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms.fields.choices import SelectChoice

from mailer.admin.access import MARKETING, roles_required
from mailer.admin.campaigns import bp
from mailer.admin.campaigns.forms import AudienceForm, ContentForm, ScheduleForm, TrackingForm
from mailer.admin.campaigns.lookup import campaign_or_404, settings
from mailer.api.fields import ID
from mailer.campaigns import audience as reach
from mailer.campaigns import catalogue, drafts, lifecycle, planning, sandbox, templates
from mailer.campaigns import content as content_rules
from mailer.campaigns.models import Campaign
from mailer.campaigns.sandbox import ContentError
from mailer.database import utcnow
from mailer.emails.mjml import MjmlError
from mailer.extensions import db
from mailer.segments.service import list_segments
from mailer.subscribers.models import Topic

# The flow's steps, in order; the review (`review.py`) shows them too.
STEPS = (
    ("content", "Content"),
    ("audience", "Audience"),
    ("tracking", "Tracking"),
    ("schedule", "Schedule"),
    ("review", "Review"),
)
CONTENT_FIELDS = ("name", "subject", "preheader", "from_name", "from_email", "reply_to")
_ZONES_KEPT = 50


def _step(name: str, campaign: Campaign | None, status: int = 200, **context: Any) -> Any:
    return (
        render_template(
            f"web/admin/campaigns/{name}.html",
            campaign=campaign,
            steps=STEPS,
            step=name,
            **context,
        ),
        status,
    )


def _next(campaign: Campaign, step: str) -> Response:
    """The step the marketer asked for (a step button of the list), else the following one."""
    names = [name for name, _ in STEPS]
    wanted = request.form.get("goto", "")
    following = wanted if wanted in names else names[min(names.index(step) + 1, len(names) - 1)]
    return redirect(url_for(f".{following}", campaign_id=campaign.id))


def _editable(campaign_id: int) -> tuple[Campaign | None, Response | None]:
    """The campaign if it may still change, else a redirect to its page."""
    campaign = campaign_or_404(campaign_id)
    if campaign.status not in drafts.EDITABLE:
        flash(f"This campaign is {campaign.status.value}: it can no longer be changed.", "warning")
        return None, redirect(url_for(".show", campaign_id=campaign.id))
    return campaign, None


def _topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(Topic.name, Topic.id)))


def _template_choices(form: ContentForm) -> None:
    form.template_id.choices = [
        SelectChoice(
            str(t.id),
            t.name if templates.readiness(t).campaign_ready else f"{t.name} (no unsubscribe link)",
        )
        for t in catalogue.choices(db.session)
    ]


def _sender() -> tuple[str, str]:
    identities = getattr(settings(), "sender_identities", ())
    if identities:
        return identities[0].name, identities[0].email
    name, email = parseaddr(settings().mail_from)
    return name, email


def _jinja_problems(form: ContentForm) -> bool:
    """Subject and preheader are templates too: refuse what the send would refuse, with the
    field named, before saving."""
    found = False
    checks = (
        (form.subject, content_rules.SUBJECT_CAMPAIGN_FIELDS),
        (form.preheader, sandbox.CAMPAIGN_FIELDS),
    )
    for field, campaign_fields in checks:
        problems = sandbox.tree_problems(field.data or "", campaign_fields=campaign_fields)
        if problems:
            field.errors = [*field.errors, *sandbox.messages(problems)]
            found = True
    return found


def _save(values: dict[str, Any], campaign: Campaign | None) -> tuple[Campaign | None, str]:
    try:
        if campaign is None:
            return drafts.create(db.session, values), ""
        return drafts.update(db.session, campaign, values), ""
    except drafts.DraftError as exc:
        db.session.rollback()
        return None, f"{exc.field}: {exc.message}"


# --- 1. content --------------------------------------------------------------------------


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*MARKETING)
def new() -> Any:
    topics = _topics()
    if request.method == "GET":
        name, email = _sender()
        form = ContentForm(formdata=None, data={"from_name": name, "from_email": email})
    else:
        form = ContentForm()
    _template_choices(form)
    missing = not topics or not form.template_id.choices
    if missing or request.method == "GET" or not form.validate_on_submit() or _jinja_problems(form):
        status = 200 if request.method == "GET" else 422
        return _step("content", None, status, form=form, missing_topics=not topics)
    values = {f: getattr(form, f).data or "" for f in CONTENT_FIELDS}
    values["reply_to"] = values["reply_to"] or None
    values["template_id"] = form.template_id.data
    values["topic_id"] = topics[0].id  # chosen in the next step
    values["track_opens"] = getattr(settings(), "track_opens_default", True)
    values["track_clicks"] = getattr(settings(), "track_clicks_default", True)
    campaign, error = _save(values, None)
    if campaign is None:
        return _step("content", None, 422, form=form, missing_topics=False, error=error)
    flash("Draft saved.", "ok")
    return _next(campaign, "content")


@bp.route(f"/<{ID}:campaign_id>/content", methods=["GET", "POST"])
@roles_required(*MARKETING)
def content(campaign_id: int) -> Any:
    campaign, away = _editable(campaign_id)
    if campaign is None:
        return away
    form = ContentForm(obj=campaign) if request.method == "GET" else ContentForm()
    _template_choices(form)
    if request.method == "GET":
        return _step("content", campaign, form=form, missing_topics=False)
    if not form.validate_on_submit() or _jinja_problems(form):
        return _step("content", campaign, 422, form=form, missing_topics=False)
    values = {f: getattr(form, f).data or "" for f in CONTENT_FIELDS}
    values["reply_to"] = values["reply_to"] or None
    values["template_id"] = form.template_id.data
    saved, error = _save(values, campaign)
    if saved is None:
        return _step("content", campaign, 422, form=form, missing_topics=False, error=error)
    flash("Draft saved.", "ok")
    return _next(saved, "content")


# --- 2. audience -------------------------------------------------------------------------


def _audience_form(campaign: Campaign, data: bool) -> AudienceForm:
    form = (
        AudienceForm()
        if data
        else AudienceForm(
            formdata=None,
            data={"topic_id": campaign.topic_id, "segment_id": campaign.segment_id or 0},
        )
    )
    form.topic_id.choices = [SelectChoice(str(t.id), t.name or t.slug) for t in _topics()]
    form.segment_id.choices = [SelectChoice("0", "Everyone subscribed to the topic")] + [
        SelectChoice(str(s.id), s.name) for s in list_segments(db.session)
    ]
    return form


def _count(topic_id: int | None, segment_id: int | None) -> int | None:
    if not topic_id:
        return None
    try:
        return reach.estimate(db.session, topic_id, segment_id or None)
    except LookupError:
        return None


@bp.route(f"/<{ID}:campaign_id>/audience", methods=["GET", "POST"])
@roles_required(*MARKETING)
def audience(campaign_id: int) -> Any:
    campaign, away = _editable(campaign_id)
    if campaign is None:
        return away
    form = _audience_form(campaign, data=request.method == "POST")
    if request.method == "GET":
        count = _count(campaign.topic_id, campaign.segment_id)
        return _step("audience", campaign, form=form, count=count)
    if not form.validate_on_submit():
        return _step("audience", campaign, 422, form=form, count=None)
    values = {"topic_id": form.topic_id.data, "segment_id": form.segment_id.data or None}
    saved, error = _save(values, campaign)
    if saved is None:
        return _step("audience", campaign, 422, form=form, count=None, error=error)
    flash("Audience saved.", "ok")
    return _next(saved, "audience")


@bp.get(f"/<{ID}:campaign_id>/audience/count")
@roles_required(*MARKETING)
def audience_count(campaign_id: int) -> str:
    """htmx: the recipient count for the topic and segment currently chosen (not saved)."""
    campaign_or_404(campaign_id)
    topic_id = request.args.get("topic_id", type=int)
    segment_id = request.args.get("segment_id", type=int)
    return render_template("web/admin/campaigns/_count.html", count=_count(topic_id, segment_id))


# --- 3. tracking -------------------------------------------------------------------------


@bp.route(f"/<{ID}:campaign_id>/tracking", methods=["GET", "POST"])
@roles_required(*MARKETING)
def tracking(campaign_id: int) -> Any:
    campaign, away = _editable(campaign_id)
    if campaign is None:
        return away
    if request.method == "GET":
        return _step("tracking", campaign, form=TrackingForm(obj=campaign))
    form = TrackingForm()
    if not form.validate_on_submit():
        return _step("tracking", campaign, 422, form=form)
    values = {"track_opens": form.track_opens.data, "track_clicks": form.track_clicks.data}
    saved, error = _save(values, campaign)
    if saved is None:
        return _step("tracking", campaign, 422, form=form, error=error)
    flash("Tracking saved.", "ok")
    return _next(saved, "tracking")


# --- 4. schedule -------------------------------------------------------------------------


def remembered_zone(campaign_id: int) -> str:
    """The time zone this browser last chose for the campaign (the database keeps UTC)."""
    zone = (session.get("campaign_zones") or {}).get(str(campaign_id), "UTC")
    return zone if isinstance(zone, str) and planning.known_zone(zone) else "UTC"


def _remember_zone(campaign_id: int, zone: str) -> None:
    zones = dict(session.get("campaign_zones") or {})
    zones.pop(str(campaign_id), None)
    zones[str(campaign_id)] = zone
    session["campaign_zones"] = dict(list(zones.items())[-_ZONES_KEPT:])


def _schedule_page(campaign: Campaign, form: ScheduleForm, zone: str, status: int = 200) -> Any:
    try:
        tz = planning.zone(zone)
    except planning.PlanError:
        zone, tz = "UTC", planning.zone("UTC")
    local = campaign.send_at.astimezone(tz) if campaign.send_at else None
    return _step("schedule", campaign, status, form=form, zone=zone, local_send_at=local)


def _schedule_form(campaign: Campaign, data: bool) -> ScheduleForm:
    if data:
        form = ScheduleForm()
    else:
        zone = remembered_zone(campaign.id)
        form = ScheduleForm(
            formdata=None,
            data={
                "when": "later" if campaign.send_at else "now",
                "timezone": zone,
                "send_at": planning.local_value(campaign.send_at, zone) if campaign.send_at else "",
            },
        )
    form.timezone.choices = [SelectChoice(z) for z in planning.zones()]
    return form


@bp.route(f"/<{ID}:campaign_id>/schedule", methods=["GET", "POST"])
@roles_required(*MARKETING)
def schedule(campaign_id: int) -> Any:
    campaign, away = _editable(campaign_id)
    if campaign is None:
        return away
    form = _schedule_form(campaign, data=request.method == "POST")
    if request.method == "GET":
        return _schedule_page(campaign, form, remembered_zone(campaign.id))
    zone = form.timezone.data or "UTC"
    if not form.validate_on_submit():
        return _schedule_page(campaign, form, zone, 422)
    try:
        send_at = None
        if form.when.data == "later":
            send_at = planning.parse_local(form.send_at.data or "", zone)
        planning.plan(db.session, campaign, send_at, utcnow())
    except planning.PlanError as exc:
        target = getattr(form, exc.field, None) or form.send_at
        target.errors = [*target.errors, exc.message]
        return _schedule_page(campaign, form, zone, 422)
    except (ContentError, MjmlError, lifecycle.CampaignStateError) as exc:
        db.session.rollback()
        form.send_at.errors = [*form.send_at.errors, str(exc)]
        return _schedule_page(campaign, form, zone, 422)
    _remember_zone(campaign.id, zone)
    flash("Schedule saved." if send_at else "It will go out when you send it.", "ok")
    return _next(campaign, "schedule")


@bp.get(f"/<{ID}:campaign_id>/schedule/echo")
@roles_required(*MARKETING)
def schedule_echo(campaign_id: int) -> str:
    """htmx: the chosen local time shown back in UTC and in its zone, before saving."""
    campaign_or_404(campaign_id)
    moment, error = None, None
    if request.args.get("when") == "later":
        try:
            moment = planning.parse_local(
                request.args.get("send_at", ""), request.args.get("timezone", "UTC")
            )
        except planning.PlanError as exc:
            error = exc.message
    zone = request.args.get("timezone", "UTC")
    local = moment.astimezone(planning.zone(zone)) if moment is not None else None
    return render_template(
        "web/admin/campaigns/_when.html", moment=moment, local=local, zone=zone, error=error
    )
