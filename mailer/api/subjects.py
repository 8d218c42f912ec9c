"""Data subjects' rights for compliance staff: the proof of one person's consent, the access
export (GDPR Art. 15, 20) and erasure (Art. 17). Every call is on the staff audit log."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from mailer.accounts.models import Role
from mailer.api.access_log import log_access
from mailer.api.auth import current_key, require
from mailer.api.errors import ApiError
from mailer.api.fields import address_or_400
from mailer.compliance import access, access_zip, erasure, receipts
from mailer.consent.models import ConsentSource
from mailer.extensions import db
from mailer.pseudonyms import keyed
from mailer.subscribers import profiles
from mailer.subscribers.models import Subscriber

blp = Blueprint(
    "api_subjects",
    __name__,
    url_prefix="/api/v1/subjects",
    description="Data subjects' rights (GDPR Art. 15, 17, 20)",
)

NOTHING_HELD = {"email": ["nothing is held about this address"]}


class SubjectEventSchema(Schema):
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
    email = fields.String(allow_none=True, metadata={"description": "empty once erased"})
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    row_hash = fields.String()


class ConsentTextSchema(Schema):
    sha256 = fields.String()
    text = fields.String()
    form_id = fields.Integer(allow_none=True)
    form_version_id = fields.Integer(allow_none=True)
    version = fields.Integer(allow_none=True)


class SubjectConsentSchema(Schema):
    email = fields.String()
    subject_hmac = fields.String()
    events = fields.List(fields.Nested(SubjectEventSchema))
    consent_texts = fields.List(fields.Nested(ConsentTextSchema))
    receipt = fields.Dict(
        allow_none=True,
        metadata={"description": "Kantara Consent Receipt v1.1; null without confirmed consent"},
    )


class EraseArgs(Schema):
    confirm = fields.String(
        required=True, metadata={"description": "the address again, so a stray call erases no one"}
    )


class ErasureSchema(Schema):
    subject_hmac = fields.String()
    events_pseudonymised = fields.Integer()
    erased_event_id = fields.Integer()
    withdrawn = fields.List(fields.String())


@blp.route("/<email>/consent")
class SubjectConsent(MethodView):
    @require(Role.COMPLIANCE)
    @blp.response(200, SubjectConsentSchema)
    def get(self, email: str) -> Any:
        """Every consent event of the address (before an erasure too, pseudonymised), the
        exact consent texts shown, and a consent receipt."""
        address = address_or_400(email)
        log_access("subject.consent", address)
        events = access.subject_events(db.session, address)
        held = db.session.scalar(select(Subscriber.id).where(Subscriber.email == address))
        if not events and held is None:
            raise ApiError(404, NOTHING_HELD)
        try:
            receipt = receipts.receipt(db.session, address, current_app.config["MAILER"].controller)
        except access.NothingHeld:
            receipt = None
        return {
            "email": address,
            "subject_hmac": keyed(db.session, address),
            "events": profiles.describe_events(db.session, events, clear_values=True),
            "consent_texts": profiles.consent_texts(db.session, events),
            "receipt": receipt,
        }


class ExportArgs(Schema):
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "zip"]),
        metadata={"description": "json (one document) or zip (one CSV per section)"},
    )


@blp.route("/<email>/export")
class SubjectExport(MethodView):
    @require(Role.COMPLIANCE)
    @blp.arguments(ExportArgs, location="query")
    @blp.response(200, description="the access document (JSON), or a ZIP of CSVs")
    def get(self, args: dict[str, Any], email: str) -> Any:
        """Everything held about the address, for an access or portability request: profile,
        attributes, engagement, subscriptions, consent events with their texts, emails sent,
        campaign deliveries, opens, clicks and bounces. `format=zip`: the same as one CSV per
        section."""
        address = address_or_400(email)
        log_access("subject.export", address, details={"format": args["format"]})
        try:
            document = access.export(db.session, address)
        except access.NothingHeld:
            raise ApiError(404, NOTHING_HELD) from None
        if args["format"] == "json":
            return document
        return Response(
            access_zip.archive(document),
            mimetype="application/zip",
            headers={"Content-Disposition": 'attachment; filename="subject-export.zip"'},
        )


def _erase(args: dict[str, Any], email: str) -> Any:
    """The erasure both routes share: the address repeated in `confirm`, then logged, then
    erased (404 when nothing is held)."""
    address = address_or_400(email)
    try:
        confirmed = address_or_400(args["confirm"], "confirm") == address
    except ApiError:
        confirmed = False
    if not confirmed:
        raise ApiError(422, {"confirm": ["repeat the address from the URL to erase it"]})
    log_access("subject.erase", address)
    key = current_key()
    try:
        return erasure.erase(
            db.session, address, f"apikey:{key.id} {key.name}"[:320], ConsentSource.API
        )
    except erasure.NothingToErase:
        raise ApiError(404, NOTHING_HELD) from None


@blp.route("/<email>")
class Subject(MethodView):
    @require(Role.COMPLIANCE)
    @blp.arguments(EraseArgs)
    @blp.response(200, ErasureSchema)
    def delete(self, args: dict[str, Any], email: str) -> Any:
        """Erase the address's personal data (GDPR Art. 17), as `POST .../erase` does; the
        pseudonymised proof of consent stays. Needs the JSON body
        `{"confirm": "<the same address>"}`."""
        return _erase(args, email)


@blp.route("/<email>/erase")
class SubjectErase(MethodView):
    @require(Role.COMPLIANCE)
    @blp.arguments(EraseArgs)
    @blp.response(200, ErasureSchema)
    def post(self, args: dict[str, Any], email: str) -> Any:
        """Erase the address's personal data; the pseudonymised proof of consent stays, and an
        HMAC on the suppression list keeps imports from bringing it back. Needs
        `{"confirm": "<the same address>"}`."""
        return _erase(args, email)
