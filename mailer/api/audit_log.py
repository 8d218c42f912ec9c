"""The staff audit log, for admins: who viewed or exported whose personal data, and when."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from mailer.api.auth import require
from mailer.api.fields import Address, id_range, no_control
from mailer.api.pagination import Page, PageArgs, page_of
from mailer.compliance import staff_log
from mailer.extensions import db

blp = Blueprint(
    "api_audit_log",
    __name__,
    url_prefix="/api/v1/audit-log",
    description="Staff access to personal data (admins only)",
)


class AuditLogArgs(PageArgs):
    action = fields.String(validate=[validate.Length(max=64), no_control()])
    subject = Address(metadata={"description": "every access to this person's data"})
    api_key_id = fields.Integer(validate=id_range)


class StaffAccessSchema(Schema):
    id = fields.Integer()
    occurred_at = fields.DateTime()
    api_key_id = fields.Integer(allow_none=True)
    api_key_name = fields.String()
    user_id = fields.Integer(allow_none=True)
    ip = fields.String(allow_none=True)
    action = fields.String()
    endpoint = fields.String()
    subject_hmac = fields.String(allow_none=True)
    subject_masked = fields.String(allow_none=True)
    subscriber_id = fields.Integer(allow_none=True)
    details = fields.Dict()


class StaffAccessPage(Page):
    items = fields.List(fields.Nested(StaffAccessSchema))


@blp.route("")
class AuditLog(MethodView):
    @require()  # admins only
    @blp.arguments(AuditLogArgs, location="query")
    @blp.response(200, StaffAccessPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Newest first. Subjects appear as a keyed HMAC and a masked address, never in clear;
        filter by `subject` to see every access to one person."""
        rows, total = staff_log.page(
            db.session,
            args["page"],
            args["per_page"],
            action=args.get("action"),
            subject_email=args.get("subject"),
            api_key_id=args.get("api_key_id"),
        )
        return page_of(rows, total, args)
