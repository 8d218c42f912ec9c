"""Campaigns: compose, test-send, schedule, send, pause, resume, cancel, report."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from mailer.accounts.models import Role
from mailer.api.auth import require
from mailer.api.errors import ApiError
from mailer.api.fields import ID, id_range, no_control
from mailer.campaigns import drafts, lifecycle, proofs, reports
from mailer.campaigns.models import Campaign
from mailer.campaigns.sandbox import ContentError
from mailer.config import Settings
from mailer.delivery.wire import HeaderInjection
from mailer.emails.mjml import MjmlError
from mailer.extensions import db
from mailer.settings import store
from mailer.subscribers.schemas import EmailAddress, PersonName

blp = Blueprint("api_campaigns", __name__, url_prefix="/api/v1/campaigns", description="Campaigns")


class CampaignArgs(Schema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), no_control()])
    # One line: CR/LF would be header injection (and the MIME builder refuses it too).
    subject = fields.String(required=True, validate=[validate.Length(min=1, max=500), no_control()])
    preheader = fields.String(load_default="", validate=[validate.Length(max=500), no_control()])
    from_name = PersonName(required=True, validate=validate.Length(min=1, max=200))
    from_email = EmailAddress(required=True)
    reply_to = EmailAddress(load_default=None, allow_none=True)
    template_id = fields.Integer(required=True, strict=True, validate=id_range)
    topic_id = fields.Integer(required=True, strict=True, validate=id_range)
    segment_id = fields.Integer(load_default=None, allow_none=True, strict=True, validate=id_range)
    # Left out: the tracking defaults of the admin's settings.
    track_opens = fields.Boolean()
    track_clicks = fields.Boolean()


class CampaignPatch(CampaignArgs):
    """Any subset of the fields (used with `partial=True`)."""


class CampaignSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    subject = fields.String()
    preheader = fields.String()
    from_name = fields.String()
    from_email = fields.String()
    reply_to = fields.String(allow_none=True)
    template_id = fields.Integer()
    topic_id = fields.Integer()
    segment_id = fields.Integer(allow_none=True)
    track_opens = fields.Boolean()
    track_clicks = fields.Boolean()
    status = fields.Function(lambda c: c.status.value)
    send_at = fields.DateTime(allow_none=True)
    recipient_count = fields.Integer()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    counts = fields.Method("_counts")

    def _counts(self, campaign: Campaign) -> dict[str, int]:
        return reports.counts(db.session, campaign.id)


class ScheduleArgs(Schema):
    send_at = fields.AwareDateTime(required=True, format="iso")


class TestArgs(Schema):
    addresses = fields.List(EmailAddress(), required=True, validate=validate.Length(min=1, max=10))
    subscriber_id = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=id_range
    )


class TestResult(Schema):
    address = fields.String()
    outcome = fields.String()
    detail = fields.String()


class ReportSchema(Schema):
    class Meta:
        # Figures grow with tracking; the document names the stable ones.
        unknown = "include"

    campaign_id = fields.Integer()
    status = fields.String()
    recipients = fields.Integer()
    deliveries = fields.Dict(keys=fields.String(), values=fields.Integer())
    skipped = fields.Dict(keys=fields.String(), values=fields.Integer())
    opens = fields.Dict()
    clicks = fields.Dict()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


def _campaign(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise ApiError(404, {"campaign_id": ["no campaign with this id"]})
    return campaign


def _content_errors(exc: ContentError | HeaderInjection | MjmlError) -> ApiError:
    if isinstance(exc, ContentError):
        return ApiError(422, {f: [str(p) for p in ps] for f, ps in exc.errors.items()})
    if isinstance(exc, MjmlError):
        return ApiError(422, {"mjml": [str(p) for p in exc.problems]})
    return ApiError(422, {"headers": [str(exc)]})


# What can be wrong with a campaign's content when it is frozen or rendered.
CONTENT_ERRORS = (ContentError, HeaderInjection, MjmlError)


@blp.route("")
class Campaigns(MethodView):
    @require(Role.MARKETER)
    @blp.response(200, CampaignSchema(many=True))
    def get(self) -> Any:
        return db.session.scalars(select(Campaign).order_by(Campaign.id.desc())).all()

    @require(Role.MARKETER)
    @blp.arguments(CampaignArgs)
    @blp.response(201, CampaignSchema)
    def post(self, args: dict[str, Any]) -> Any:
        settings = _settings()
        args.setdefault("track_opens", settings.track_opens_default)
        args.setdefault("track_clicks", settings.track_clicks_default)
        try:
            return drafts.create(db.session, args)
        except drafts.DraftError as exc:
            raise ApiError(422, {exc.field: [exc.message]}) from exc


def _settings() -> Settings:
    """What the admin set over the environment (sender, SMTP, DKIM, tracking defaults)."""
    return store.effective(db.session, current_app.config["MAILER"])


@blp.route(f"/<{ID}:campaign_id>")
class CampaignItem(MethodView):
    @require(Role.MARKETER)
    @blp.response(200, CampaignSchema)
    def get(self, campaign_id: int) -> Any:
        return _campaign(campaign_id)

    @require(Role.MARKETER)
    @blp.arguments(CampaignPatch(partial=True))
    @blp.response(200, CampaignSchema)
    def patch(self, args: dict[str, Any], campaign_id: int) -> Any:
        try:
            return drafts.update(db.session, _campaign(campaign_id), args)
        except drafts.DraftError as exc:
            code = 409 if exc.field == "status" else 422
            raise ApiError(code, {exc.field: [exc.message]}) from exc


def _act(action: Any, campaign_id: int, *args: Any) -> Campaign:
    _campaign(campaign_id)
    try:
        return action(db.session, campaign_id, *args)
    except lifecycle.CampaignStateError as exc:
        raise ApiError(409, {"status": [str(exc)]}) from exc
    except CONTENT_ERRORS as exc:
        db.session.rollback()
        raise _content_errors(exc) from exc


@blp.route(f"/<{ID}:campaign_id>/schedule", methods=["POST"])
@require(Role.MARKETER)
@blp.arguments(ScheduleArgs)
@blp.response(200, CampaignSchema)
def schedule(args: dict[str, Any], campaign_id: int) -> Any:
    return _act(lifecycle.schedule, campaign_id, args["send_at"])


@blp.route(f"/<{ID}:campaign_id>/send", methods=["POST"])
@require(Role.MARKETER)
@blp.response(202, CampaignSchema)
def send(campaign_id: int) -> Any:
    return _act(lifecycle.send_now, campaign_id)


@blp.route(f"/<{ID}:campaign_id>/pause", methods=["POST"])
@require(Role.MARKETER)
@blp.response(200, CampaignSchema)
def pause(campaign_id: int) -> Any:
    return _act(lifecycle.pause, campaign_id)


@blp.route(f"/<{ID}:campaign_id>/resume", methods=["POST"])
@require(Role.MARKETER)
@blp.response(202, CampaignSchema)
def resume(campaign_id: int) -> Any:
    return _act(lifecycle.resume, campaign_id)


@blp.route(f"/<{ID}:campaign_id>/cancel", methods=["POST"])
@require(Role.MARKETER)
@blp.response(200, CampaignSchema)
def cancel(campaign_id: int) -> Any:
    return _act(lifecycle.cancel, campaign_id)


@blp.route(f"/<{ID}:campaign_id>/test", methods=["POST"])
@require(Role.MARKETER)
@blp.arguments(TestArgs)
@blp.response(200, TestResult(many=True))
def test_send(args: dict[str, Any], campaign_id: int) -> Any:
    """Sends now (at most 10 addresses), marked as a test: "[Test]" subject, no tracking,
    and links that act for nobody. Personalised as `subscriber_id` when given."""
    _campaign(campaign_id)
    try:
        return proofs.send_test(
            db.session,
            _settings(),
            current_app.extensions["mailer.tokens"],
            campaign_id,
            args["addresses"],
            args["subscriber_id"],
        )
    except LookupError as exc:
        raise ApiError(422, {"subscriber_id": ["no subscriber with this id"]}) from exc
    except CONTENT_ERRORS as exc:
        raise _content_errors(exc) from exc


@blp.route(f"/<{ID}:campaign_id>/report", methods=["GET"])
@require(Role.MARKETER, Role.COMPLIANCE)
@blp.response(200, ReportSchema)
def report(campaign_id: int) -> Any:
    return reports.report(db.session, _campaign(campaign_id))
