"""Sign-up forms: their topics, settings and consent text. A changed consent text is a new
version; the old ones stay readable, because consent events point at the text shown."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select

from mailer.accounts.models import Role
from mailer.api.auth import require
from mailer.api.errors import ApiError
from mailer.api.fields import ID, check_locale, no_control
from mailer.extensions import db
from mailer.subscribers import forms
from mailer.subscribers.models import Form, Topic
from mailer.subscribers.schemas import SLUG

blp = Blueprint("api_forms", __name__, url_prefix="/api/v1/forms", description="Sign-up forms")

MAX_CONSENT_TEXT = 10_000


class OriginField(fields.String):
    """`https://shop.example` (scheme, host, optional port; nothing else), lower-cased."""

    default_error_messages = {"origin": "use an origin like https://shop.example (no path)"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        try:
            parts = urlsplit(text)
            port = parts.port  # raises on a bad port
        except ValueError as exc:
            raise self.make_error("origin") from exc
        if (
            parts.scheme not in {"http", "https"}
            or not parts.hostname
            or parts.username is not None
            or parts.path not in {"", "/"}
            or parts.query
            or parts.fragment
        ):
            raise self.make_error("origin")
        host = parts.hostname.lower()
        if ":" in host:
            host = f"[{host}]"
        return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be blank")


SLUG_RULE = validate.Regexp(SLUG, error="use letters, digits, - and _ (at most 64)")


REQUIRED = object()


def _form_fields(creating: bool) -> dict[str, fields.Field]:
    """The writable fields: on POST with their defaults, on PATCH all optional, no defaults."""

    def arg(default: Any = REQUIRED) -> dict[str, Any]:
        if not creating:
            return {}
        return {"required": True} if default is REQUIRED else {"load_default": default}

    return {
        "slug": fields.String(validate=SLUG_RULE, **arg()),
        "name": fields.String(validate=[validate.Length(min=1, max=200), no_control()], **arg()),
        "topics": fields.List(
            fields.String(validate=SLUG_RULE),
            validate=validate.Length(min=1, max=50),
            metadata={"description": "topic slugs"},
            **arg(),
        ),
        "locale": fields.String(
            allow_none=True,
            validate=check_locale,
            metadata={"description": "null: the visitor's language"},
            **arg(None),
        ),
        "ask_name": fields.Boolean(**arg(False)),
        "welcome_enabled": fields.Boolean(**arg(False)),
        "welcome_gmail_tip": fields.Boolean(**arg(True)),
        "allowed_origins": fields.List(
            OriginField(validate=no_control()), validate=validate.Length(max=50), **arg(list)
        ),
        "consent_text": fields.String(
            validate=[
                validate.Length(min=1, max=MAX_CONSENT_TEXT),
                _not_blank,
                no_control(multiline=True),
            ],
            metadata={"description": "a changed text becomes a new version"},
            **arg(),
        ),
    }


FormArgs = Schema.from_dict(_form_fields(creating=True), name="FormArgs")
FormPatchArgs = Schema.from_dict(_form_fields(creating=False), name="FormPatchArgs")


class VersionSchema(Schema):
    id = fields.Integer()
    version = fields.Integer()
    text = fields.String(attribute="consent_text")
    sha256 = fields.String(attribute="consent_text_sha256")
    created_at = fields.DateTime()


class FormSchema(Schema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    topics = fields.Function(lambda form: [t.slug for t in form.topics])
    locale = fields.String(allow_none=True)
    ask_name = fields.Boolean()
    welcome_enabled = fields.Boolean()
    welcome_gmail_tip = fields.Boolean()
    allowed_origins = fields.List(fields.String())
    consent_text = fields.Function(lambda form: form.current_version.consent_text)
    current_version = fields.Nested(VersionSchema)
    created_at = fields.DateTime()


def _topics(slugs: list[str]) -> list[Topic]:
    found = {t.slug: t for t in db.session.scalars(select(Topic).where(Topic.slug.in_(slugs)))}
    errors = {
        f"topics.{i}": [f"unknown topic {slug!r}"]
        for i, slug in enumerate(slugs)
        if slug not in found
    }
    if errors:
        raise ApiError(422, errors)
    return [found[s] for s in dict.fromkeys(slugs)]


def _slug_free(slug: str, form_id: int | None = None) -> None:
    other = db.session.scalar(select(Form.id).where(Form.slug == slug))
    if other is not None and other != form_id:
        raise ApiError(409, {"slug": ["a form with this slug exists"]})


def _form_or_404(form_id: int) -> Form:
    form = db.session.get(Form, form_id)
    if form is None:
        raise ApiError(404, {"form_id": ["no form with this id"]})
    return form


@blp.route("")
class Forms(MethodView):
    @require(Role.MARKETER, Role.COMPLIANCE)
    @blp.response(200, FormSchema(many=True))
    def get(self) -> Any:
        return db.session.scalars(select(Form).order_by(Form.id)).all()

    @require(Role.MARKETER)
    @blp.arguments(FormArgs)
    @blp.response(201, FormSchema)
    def post(self, args: dict[str, Any]) -> Any:
        _slug_free(args["slug"])
        text = args.pop("consent_text")
        args["topics"] = _topics(args["topics"])
        form = Form(**args)
        db.session.add(form)
        db.session.flush()
        forms.set_consent_text(db.session, form, text)
        db.session.commit()
        return form


@blp.route(f"/<{ID}:form_id>")
class FormItem(MethodView):
    @require(Role.MARKETER, Role.COMPLIANCE)
    @blp.response(200, FormSchema)
    def get(self, form_id: int) -> Any:
        return _form_or_404(form_id)

    @require(Role.MARKETER)
    @blp.arguments(FormPatchArgs)
    @blp.response(200, FormSchema)
    def patch(self, args: dict[str, Any], form_id: int) -> Any:
        form = _form_or_404(form_id)
        if "slug" in args:
            _slug_free(args["slug"], form.id)
        if "topics" in args:
            args["topics"] = _topics(args["topics"])
        text = args.pop("consent_text", None)
        for key, value in args.items():
            setattr(form, key, value)
        if text is not None:
            forms.set_consent_text(db.session, form, text)
        db.session.commit()
        return form


@blp.route(f"/<{ID}:form_id>/versions")
class FormVersions(MethodView):
    @require(Role.MARKETER, Role.COMPLIANCE)
    @blp.response(200, VersionSchema(many=True))
    def get(self, form_id: int) -> Any:
        """Every consent text the form has shown, oldest first."""
        return _form_or_404(form_id).versions
