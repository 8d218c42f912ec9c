"""Templates: MJML with Jinja personalisation, checked when saved, previewed as sent."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from mailer.accounts.models import Role
from mailer.api.auth import require
from mailer.api.errors import ApiError
from mailer.api.fields import ID, id_range, no_control
from mailer.campaigns import rendering, templates
from mailer.campaigns.models import Template
from mailer.campaigns.sandbox import ContentError
from mailer.emails.mjml import MjmlUnavailable
from mailer.extensions import db
from mailer.subscribers.models import Subscriber

blp = Blueprint(
    "api_templates", __name__, url_prefix="/api/v1/templates", description="Email templates"
)


@blp.before_request
def _room_for_a_template() -> None:
    request.max_content_length = templates.REQUEST_MAX_BYTES


# MJML output is responsive: one HTML document, shown at each width.
DESKTOP_WIDTH = 600
MOBILE_WIDTH = 375


class TemplateArgs(Schema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), no_control()])
    mjml = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=500_000), no_control(multiline=True)],
        metadata={"description": "MJML with Jinja: {{ subscriber.first_name | default('there') }}"},
    )
    text = fields.String(
        load_default=None,
        allow_none=True,
        validate=[validate.Length(max=500_000), no_control(multiline=True)],
        metadata={"description": "authored text part (Jinja); null: generated from the HTML"},
    )


class TemplatePatch(TemplateArgs):
    """TemplateArgs where every field is optional (loaded with partial=True)."""


class TemplateSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    mjml = fields.String()
    text = fields.String(allow_none=True)
    campaign_ready = fields.Method("_ready", metadata={"description": "campaigns may use it"})
    campaign_ready_reason = fields.Method("_reason", allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()

    def _ready(self, template: Template) -> bool:
        return templates.readiness(template).campaign_ready

    def _reason(self, template: Template) -> str | None:
        return templates.readiness(template).reason


class PreviewArgs(Schema):
    subscriber_id = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=id_range
    )
    subject = fields.String(load_default="", validate=[validate.Length(max=500), no_control()])
    preheader = fields.String(load_default="", validate=[validate.Length(max=500), no_control()])


class Viewport(Schema):
    html = fields.String()
    width = fields.Integer(metadata={"description": "viewport width in CSS pixels"})


class PreviewSchema(Schema):
    subject = fields.String()
    html = fields.String()
    text = fields.String()
    desktop = fields.Nested(Viewport)
    mobile = fields.Nested(Viewport)
    note = fields.String()


def _template(template_id: int) -> Template:
    template = templates.get(db.session, template_id)
    if template is None:
        raise ApiError(404, {"template_id": ["no template with this id"]})
    return template


def _node() -> str:
    return current_app.config["MAILER"].node_binary


def _saving(action: Any, *args: Any, **kwargs: Any) -> Template:
    """Run a save; content problems are 422 naming field and line, a missing Node is 503."""
    try:
        template = action(db.session, *args, node=_node(), **kwargs)
    except ContentError as exc:
        db.session.rollback()
        raise ApiError(422, exc.errors) from exc
    except MjmlUnavailable as exc:
        db.session.rollback()
        raise ApiError(503, {"mjml": [str(exc)]}) from exc
    db.session.commit()
    return template


@blp.route("")
class Templates(MethodView):
    @require(Role.MARKETER)
    @blp.response(200, TemplateSchema(many=True))
    def get(self) -> Any:
        return templates.list_all(db.session)

    @require(Role.MARKETER)
    @blp.arguments(TemplateArgs)
    @blp.response(201, TemplateSchema)
    def post(self, args: dict[str, Any]) -> Any:
        """Compiled and checked before it is stored: MJML errors, unknown variables and
        anything reaching Python internals are refused with their line (422)."""
        return _saving(templates.create, **args)


@blp.route(f"/<{ID}:template_id>")
class TemplateItem(MethodView):
    @require(Role.MARKETER)
    @blp.response(200, TemplateSchema)
    def get(self, template_id: int) -> Any:
        return _template(template_id)

    @require(Role.MARKETER)
    @blp.arguments(TemplatePatch(partial=True))
    @blp.response(200, TemplateSchema)
    def put(self, args: dict[str, Any], template_id: int) -> Any:
        """Fields left out keep their value; `"text": null` goes back to a generated text
        part. Campaigns already sending keep the content they froze."""
        return _saving(templates.update, _template(template_id), **args)


@blp.route(f"/<{ID}:template_id>/preview", methods=["POST"])
@require(Role.MARKETER)
@blp.arguments(PreviewArgs)
@blp.response(200, PreviewSchema)
def preview(args: dict[str, Any], template_id: int) -> Any:
    """Rendered for `subscriber_id` (or a sample subscriber). Links in a preview go nowhere
    and nothing is tracked. MJML output is responsive, so `desktop` and `mobile` hold the same
    HTML with the viewport width to show it at."""
    template = _template(template_id)
    recipient = None
    if args["subscriber_id"] is not None:
        subscriber = db.session.get(Subscriber, args["subscriber_id"])
        if subscriber is None:
            raise ApiError(422, {"subscriber_id": ["no subscriber with this id"]})
        recipient = rendering.Recipient.from_subscriber(subscriber)
    try:
        result = rendering.preview(
            db.session,
            template,
            recipient,
            subject=args["subject"],
            preheader=args["preheader"],
            node=_node(),
        )
    except ContentError as exc:
        raise ApiError(422, exc.errors) from exc
    except MjmlUnavailable as exc:
        raise ApiError(503, {"mjml": [str(exc)]}) from exc
    return {
        **result,
        "desktop": {"html": result["html"], "width": DESKTOP_WIDTH},
        "mobile": {"html": result["html"], "width": MOBILE_WIDTH},
        "note": "MJML output is responsive: the same HTML, shown at each width.",
    }
