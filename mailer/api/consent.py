"""The consent ledger for compliance staff: the audit export, streamed, and the chain check."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailer.accounts.models import Role
from mailer.api.access_log import current_staff, endpoint, log_access
from mailer.api.auth import require
from mailer.api.fields import form_id_arg
from mailer.compliance import audit_export, verification
from mailer.consent.models import ConsentEventType, LedgerAnchor
from mailer.extensions import db
from mailer.subscribers.schemas import SLUG

blp = Blueprint(
    "api_consent", __name__, url_prefix="/api/v1/consent", description="The consent ledger"
)

FLUSH_ROWS = 500  # rows per chunk sent to the client
ANCHORS_SHOWN = 10
MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


class ExportArgs(Schema):
    format = fields.String(load_default="csv", validate=validate.OneOf(sorted(MEDIA)))
    since = fields.DateTime(metadata={"description": "from this time (inclusive); no zone: UTC"})
    until = fields.DateTime(metadata={"description": "before this time; no zone: UTC"})
    topic = fields.String(validate=validate.Regexp(SLUG, error="not a topic slug"))
    form = fields.String(metadata={"description": "form id"})
    type = fields.List(
        fields.String(validate=validate.OneOf([t.value for t in ConsentEventType])),
        metadata={"description": "repeat for several types"},
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(audit_export.FORMULA_START):
        return "'" + value  # as the CLI export does: shown as text, never run as a formula
    return "" if value is None else value


def _chunks(factory: sessionmaker[Session], flt: audit_export.Filter, fmt: str) -> Iterator[str]:
    """The export, a few hundred rows at a time, from a session of its own: the response is
    sent after the view has returned and its session is gone."""
    session = factory()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=audit_export.FIELDS)
    try:
        if fmt == "csv":
            writer.writeheader()
        for count, row in enumerate(audit_export.rows(session, flt), 1):
            if fmt == "csv":
                writer.writerow({k: _cell(v) for k, v in row.items()})
            else:
                buffer.write(json.dumps(row, ensure_ascii=False) + "\n")
            if count % FLUSH_ROWS == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    finally:
        session.close()


@blp.route("/events")
class ConsentEvents(MethodView):
    @require(Role.COMPLIANCE)
    @blp.arguments(ExportArgs, location="query")
    @blp.response(200, content_type="text/csv", description="CSV, or JSON Lines (format=jsonl)")
    def get(self, args: dict[str, Any]) -> Any:
        """The consent audit export, streamed in chain order, as CSV or JSON Lines. Columns are
        documented and stable (`mailer/compliance/audit_export.py: COLUMNS`); CSV cells that a
        spreadsheet would run as formulas are prefixed with `'`."""
        flt = audit_export.Filter(
            since=_utc(args.get("since")),
            until=_utc(args.get("until")),
            types=tuple(ConsentEventType(t) for t in args.get("type", [])),
            topic=args.get("topic"),
            form_id=form_id_arg(args),
        )
        fmt = args["format"]
        log_access("consent.export", details=_as_given(args))
        stream = _chunks(db.sessionmaker, flt, fmt)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return Response(
            stream,
            mimetype=MEDIA[fmt].split(";")[0],
            content_type=MEDIA[fmt],
            headers={"Content-Disposition": f'attachment; filename="consent-{stamp}.{fmt}"'},
        )


def _as_given(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in args.items()}


class ProblemSchema(Schema):
    seq = fields.Integer()
    event_id = fields.Integer(allow_none=True)
    kind = fields.String(metadata={"description": "altered | missing | reordered | head | anchor"})
    detail = fields.String()


class AnchorSchema(Schema):
    created_at = fields.DateTime()
    seq = fields.Integer()
    head_hash = fields.String()


class VerifySchema(Schema):
    ok = fields.Boolean()
    checked = fields.Integer(metadata={"description": "events checked before any problem"})
    anchors_checked = fields.Integer()
    head_seq = fields.Integer()
    head_hash = fields.String()
    problem = fields.Nested(ProblemSchema, allow_none=True)
    anchors = fields.List(fields.Nested(AnchorSchema), metadata={"description": "latest first"})


@blp.route("/verify")
class ConsentVerify(MethodView):
    @require(Role.COMPLIANCE)
    @blp.response(200, VerifySchema)
    def get(self) -> Any:
        """Walk the hash chain. A broken chain is still a 200: `ok` is false and `problem`
        names the first altered, missing or reordered row (or a head or anchor mismatch).
        Each run is on the staff audit log, as from the admin pages, so "last checked" shows
        it too."""
        report = verification.run(db.session, current_staff(), endpoint())
        anchors = db.session.scalars(
            select(LedgerAnchor).order_by(LedgerAnchor.id.desc()).limit(ANCHORS_SHOWN)
        ).all()
        return {
            "ok": report.ok,
            "checked": report.checked,
            "anchors_checked": report.anchors_checked,
            "head_seq": report.head_seq,
            "head_hash": report.head_hash,
            "problem": report.problem,
            "anchors": anchors,
        }
