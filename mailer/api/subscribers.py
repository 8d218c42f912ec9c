"""Subscribers: the list, one profile with its consent history, the few fields staff may
change, and CSV import. Every read of personal data here is put on the staff audit log."""

from __future__ import annotations

import io
import unicodedata
from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate
from sqlalchemy import select

from mailer.accounts.models import Role
from mailer.api.access_log import log_access
from mailer.api.auth import current_key, require
from mailer.api.errors import ApiError
from mailer.api.fields import ID, Address, check_locale, form_id_arg
from mailer.api.pagination import Page, PageArgs, page_of
from mailer.extensions import db
from mailer.subscribers import importer, profiles
from mailer.subscribers.models import SubscriberStatus, Topic
from mailer.subscribers.schemas import SLUG

blp = Blueprint(
    "api_subscribers", __name__, url_prefix="/api/v1/subscribers", description="Subscribers"
)

# Imports may be large; every other request keeps the app's small MAX_CONTENT_LENGTH.
IMPORT_MAX_BYTES = 50 * 1024 * 1024
CSV_TYPES = {"text/csv", "text/plain", "application/csv", "application/vnd.ms-excel"}


class SubscriberListArgs(PageArgs):
    email = Address(metadata={"description": "exact address (normalised as sign-ups are)"})
    status = fields.String(
        validate=validate.OneOf([s.value for s in SubscriberStatus]),
        metadata={"description": "with topic: the status on that topic; else overall"},
    )
    topic = fields.String(
        validate=validate.Regexp(SLUG, error="not a topic slug"),
        metadata={"description": "only subscribers with a subscription to this topic"},
    )


class TopicStatusSchema(Schema):
    slug = fields.String()
    name = fields.String()
    status = fields.String()
    created_at = fields.DateTime()
    confirmed_at = fields.DateTime(allow_none=True)


class SubscriberSummary(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    locale = fields.String()
    status = fields.Function(lambda s: s.status.value)
    created_at = fields.DateTime()
    confirmed_at = fields.DateTime(allow_none=True)
    topics = fields.Function(
        lambda s: [{"slug": x.topic.slug, "status": x.status.value} for x in s.subscriptions]
    )


class SubscriberPage(Page):
    items = fields.List(fields.Nested(SubscriberSummary))


class EngagementSchema(Schema):
    last_open_at = fields.DateTime(allow_none=True)
    last_click_at = fields.DateTime(allow_none=True)
    open_count = fields.Integer(metadata={"description": "opens counted as human"})
    machine_open_count = fields.Integer(metadata={"description": "proxy and scanner opens"})
    click_count = fields.Integer()
    bounce_count = fields.Integer()
    tracking_enabled = fields.Boolean()


class ConsentEventSchema(Schema):
    id = fields.Integer()
    seq = fields.Integer()
    type = fields.String()
    occurred_at = fields.DateTime()
    topics = fields.List(fields.String())
    form_id = fields.Integer(allow_none=True)
    form_slug = fields.String(allow_none=True)
    form_version_id = fields.Integer(allow_none=True)
    form_version = fields.Integer(allow_none=True)
    consent_text_sha256 = fields.String(allow_none=True)
    source = fields.String()
    locale = fields.String(allow_none=True)
    lawful_basis = fields.String()
    evidence = fields.Dict()


class ProfileSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String()
    locale = fields.String()
    status = fields.String()
    source_form_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    confirmed_at = fields.DateTime(allow_none=True)
    unsubscribed_at = fields.DateTime(allow_none=True)
    topics = fields.List(fields.Nested(TopicStatusSchema))
    attributes = fields.Dict()
    engagement = fields.Nested(EngagementSchema)
    consent_history = fields.List(fields.Nested(ConsentEventSchema))


def _one_line(value: str) -> None:
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Zl", "Zp"} for ch in value):
        raise ValidationError("no line breaks or control characters")


NOT_HERE = {
    "status": "status follows consent (sign-up, confirmation, unsubscribe); it cannot be set",
    "email": "an address cannot be changed; the person signs up with the new one",
}


class ProfilePatchArgs(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(validate=[validate.Length(max=200), _one_line])
    locale = fields.String(validate=check_locale)
    tracking_enabled = fields.Boolean()
    attributes = fields.Dict(
        keys=fields.String(),
        metadata={"description": "merged into the attributes; a key set to null is deleted"},
    )

    @pre_load
    def _refuse(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict):
            errors = {k: [message] for k, message in NOT_HERE.items() if k in data}
            if errors:
                raise ValidationError(errors)
        return data


class ImportArgs(Schema):
    form = fields.String(
        metadata={"description": "form id: rows without evidence get its confirmation email"}
    )
    topic = fields.String(
        validate=validate.Regexp(SLUG, error="not a topic slug"),
        metadata={"description": "topic slug for rows whose topics cell is empty"},
    )


class RowErrorSchema(Schema):
    line = fields.Integer()
    field = fields.String()
    message = fields.String()


class SkippedSchema(Schema):
    line = fields.Integer()
    reason = fields.String()


class ImportReportSchema(Schema):
    import_id = fields.String()
    rows = fields.Integer(metadata={"description": "data rows read"})
    created_active = fields.Integer(metadata={"description": "new, with evidence of consent"})
    created_pending = fields.Integer(metadata={"description": "new, sent a confirmation"})
    updated = fields.Integer()
    unchanged = fields.Integer()
    skipped = fields.Integer(metadata={"description": "suppressed, erased or withdrawn"})
    invalid = fields.Integer()
    row_errors = fields.List(fields.Nested(RowErrorSchema), attribute="errors")
    skipped_rows = fields.List(fields.Nested(SkippedSchema))
    stopped_at_line = fields.Integer(allow_none=True)


def _subscriber_or_404(subscriber_id: int):
    subscriber = profiles.find(db.session, subscriber_id)
    if subscriber is None:
        raise ApiError(404, {"subscriber_id": ["no subscriber with this id"]})
    return subscriber


@blp.route("")
class Subscribers(MethodView):
    @require(Role.MARKETER, Role.COMPLIANCE)
    @blp.arguments(SubscriberListArgs, location="query")
    @blp.response(200, SubscriberPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Subscribers by id, a page at a time. `total` counts every match."""
        topic_id = None
        if "topic" in args:
            topic_id = db.session.scalar(select(Topic.id).where(Topic.slug == args["topic"]))
            if topic_id is None:
                raise ApiError(422, {"topic": ["unknown topic"]})
        status = SubscriberStatus(args["status"]) if "status" in args else None
        filters = {k: v for k, v in args.items() if k != "email"}
        log_access("subscribers.list", subject_email=args.get("email"), details=filters)
        rows, total = profiles.list_page(
            db.session, args["page"], args["per_page"], args.get("email"), status, topic_id
        )
        return page_of(rows, total, args)


@blp.route(f"/<{ID}:subscriber_id>")
class SubscriberItem(MethodView):
    @require(Role.MARKETER, Role.COMPLIANCE)
    @blp.response(200, ProfileSchema)
    def get(self, subscriber_id: int) -> Any:
        """The profile: topics, attributes, engagement and the consent history."""
        subscriber = _subscriber_or_404(subscriber_id)
        log_access("subscriber.view", subscriber.email, subscriber.id)
        return profiles.profile(db.session, subscriber)

    @require(Role.MARKETER)
    @blp.arguments(ProfilePatchArgs)
    @blp.response(200, ProfileSchema)
    def patch(self, args: dict[str, Any], subscriber_id: int) -> Any:
        """Name, locale, tracking and attributes; never status or address."""
        subscriber = _subscriber_or_404(subscriber_id)
        name = args.get("name")
        change = profiles.ProfileChange(
            name=" ".join(name.split()) if name is not None else None,
            locale=args.get("locale"),
            tracking_enabled=args.get("tracking_enabled"),
            attributes=args.get("attributes"),
        )
        try:
            profiles.update_profile(db.session, subscriber, change)
        except profiles.InvalidAttributes as exc:
            db.session.rollback()
            raise ApiError(422, exc.errors) from None
        log_access("subscriber.update", subscriber.email, subscriber.id, {"fields": sorted(args)})
        return profiles.profile(db.session, subscriber)


def _upload() -> Any:
    """The CSV as a binary stream: a multipart `file` or the body itself. Read under the
    import's own size limit, set on this request only."""
    request.max_content_length = IMPORT_MAX_BYTES
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(422, {"file": ["attach the CSV as the multipart field 'file'"]})
        return upload.stream
    if request.mimetype in CSV_TYPES:
        return io.BufferedReader(request.stream, 64 * 1024)  # read line by line
    raise ApiError(
        415, {"content_type": ["send text/csv, or multipart/form-data with a 'file' field"]}
    )


@blp.route("/import")
class SubscriberImport(MethodView):
    @require(Role.MARKETER)
    @blp.arguments(ImportArgs, location="query")
    @blp.response(200, ImportReportSchema)
    def post(self, args: dict[str, Any]) -> Any:
        """Import a CSV (UTF-8). Columns: email (required), name, locale, topics (`;`-separated
        slugs), attr.<key>, and the evidence of consent given elsewhere: consent_at (ISO 8601),
        consent_source, consent_text (the exact text shown) or form_version_id, consent_ip.
        Rows with evidence come in active, with an "imported" consent event; rows without
        evidence come in pending and are sent the `form`'s confirmation email. Active
        subscribers are never downgraded; suppressed and erased addresses are skipped.
        Bad rows are listed in `row_errors` by line and field; the rest is imported."""
        settings = current_app.config["MAILER"]
        key = current_key()
        options = importer.ImportOptions(
            form_id=form_id_arg(args),
            topic=args.get("topic"),
            actor=f"apikey:{key.id}",
            locales=settings.locales,
            default_locale=settings.default_locale,
            window_seconds=settings.confirmation_window,
            domain=settings.server_name,
            truncate_ip=settings.truncate_ip,
        )
        stream = _upload()
        given = {"form": options.form_id, "topic": options.topic}
        details = {k: v for k, v in given.items() if v is not None}
        log_access("subscribers.import", details={**details, "import_id": options.import_id})
        try:
            return importer.run(db.session, stream, options)
        except importer.BadFile as exc:
            db.session.rollback()
            raise ApiError(422, {exc.field: [exc.message]}) from None
