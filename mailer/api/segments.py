"""Segments: saved rule trees over subscriber profiles, their counts and previews.

The rule tree is documented in `mailer.segments.rules`. Marketers (and admins) write;
compliance may read, count and preview.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from mailer.accounts.models import Role
from mailer.api.auth import require
from mailer.api.errors import ApiError
from mailer.api.fields import ID, no_control
from mailer.database import utcnow
from mailer.extensions import db
from mailer.segments import service
from mailer.segments.models import Segment
from mailer.segments.rules import RuleTree, SegmentRules
from mailer.subscribers.models import SubscriberStatus

blp = Blueprint(
    "api_segments",
    __name__,
    url_prefix="/api/v1/segments",
    description="Segments: rule trees over subscriber profiles (see mailer.segments.rules).",
)

SAMPLE_SIZE = 20


class SegmentArgs(Schema):
    name = fields.String(
        required=True, validate=[validate.Length(min=1, max=service.MAX_NAME), no_control()]
    )
    rules = RuleTree(required=True)


class SegmentPatchArgs(Schema):
    name = fields.String(validate=[validate.Length(min=1, max=service.MAX_NAME), no_control()])
    rules = RuleTree()


class SegmentSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    rules = fields.Dict()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class SegmentCountSchema(Schema):
    count = fields.Integer()


class SegmentMemberSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    status = fields.Enum(SubscriberStatus, by_value=True)


class SegmentPreviewSchema(Schema):
    count = fields.Integer()
    sample = fields.List(fields.Nested(SegmentMemberSchema))


def _segment(segment_id: int) -> Segment:
    try:
        return service.get(db.session, segment_id)
    except service.SegmentNotFound:
        raise ApiError(404, {"id": ["no segment with this id"]}) from None


def _invalid(exc: service.SegmentError) -> ApiError:
    status = 409 if list(exc.errors) == ["name"] else 422
    return ApiError(status, exc.errors)


@blp.route("")
class Segments(MethodView):
    @require(Role.MARKETER, Role.COMPLIANCE)
    @blp.response(200, SegmentSchema(many=True))
    def get(self) -> Any:
        return service.list_segments(db.session)

    @require(Role.MARKETER)
    @blp.arguments(SegmentArgs)
    @blp.response(201, SegmentSchema)
    def post(self, args: dict[str, Any]) -> Any:
        try:
            return service.create(db.session, args["name"], args["rules"])
        except service.SegmentError as exc:
            raise _invalid(exc) from None


@blp.route(f"/<{ID}:segment_id>")
class SegmentById(MethodView):
    @require(Role.MARKETER, Role.COMPLIANCE)
    @blp.response(200, SegmentSchema)
    def get(self, segment_id: int) -> Any:
        return _segment(segment_id)

    @require(Role.MARKETER)
    @blp.arguments(SegmentPatchArgs)
    @blp.response(200, SegmentSchema)
    def patch(self, args: dict[str, Any], segment_id: int) -> Any:
        _segment(segment_id)
        try:
            return service.update(
                db.session, segment_id, name=args.get("name"), rules=args.get("rules")
            )
        except service.SegmentError as exc:
            raise _invalid(exc) from None


@blp.route(f"/<{ID}:segment_id>/count")
class SegmentCount(MethodView):
    @require(Role.MARKETER, Role.COMPLIANCE)
    @blp.response(200, SegmentCountSchema)
    def get(self, segment_id: int) -> Any:
        segment = _segment(segment_id)
        return {"count": service.count(db.session, segment.rules)}


@blp.route("/preview")
class SegmentPreview(MethodView):
    @require(Role.MARKETER, Role.COMPLIANCE)
    @blp.arguments(SegmentRules)
    @blp.response(200, SegmentPreviewSchema)
    def post(self, args: dict[str, Any]) -> Any:
        """Count and a sample of the members of unsaved rules (nothing is stored)."""
        errors = service.check_references(db.session, args["rules"])
        if errors:
            raise ApiError(422, errors)
        now = utcnow()
        return {
            "count": service.count(db.session, args["rules"], now=now),
            "sample": service.sample(db.session, args["rules"], limit=SAMPLE_SIZE, now=now),
        }
