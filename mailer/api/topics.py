"""Topics: what a subscriber consents to receive."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from mailer.accounts.models import Role
from mailer.api.auth import require
from mailer.api.errors import ApiError
from mailer.api.fields import no_control
from mailer.extensions import db
from mailer.subscribers.models import Topic
from mailer.subscribers.schemas import SLUG

blp = Blueprint("api_topics", __name__, url_prefix="/api/v1/topics", description="Topics")


class TopicArgs(Schema):
    slug = fields.String(
        required=True, validate=validate.Regexp(SLUG, error="use letters, digits, - and _")
    )
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), no_control()])
    description = fields.String(
        load_default="", validate=[validate.Length(max=2000), no_control(multiline=True)]
    )


class TopicSchema(Schema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    description = fields.String()
    created_at = fields.DateTime()


@blp.route("")
class Topics(MethodView):
    @require(Role.MARKETER, Role.COMPLIANCE)
    @blp.response(200, TopicSchema(many=True))
    def get(self) -> Any:
        return db.session.scalars(select(Topic).order_by(Topic.id)).all()

    @require(Role.MARKETER)
    @blp.arguments(TopicArgs)
    @blp.response(201, TopicSchema)
    def post(self, args: dict[str, Any]) -> Any:
        if db.session.scalar(select(Topic.id).where(Topic.slug == args["slug"])) is not None:
            raise ApiError(409, {"slug": ["a topic with this slug exists"]})
        topic = Topic(**args)
        db.session.add(topic)
        db.session.commit()
        return topic
