"""The staff audit log, for admins (as `GET /api/v1/audit-log`): who viewed or exported whose
personal data, and when, filterable by action and by person, newest first."""

from __future__ import annotations

from flask import render_template, request
from sqlalchemy import select

from mailer.admin.access import ADMIN, roles_required
from mailer.admin.compliance import bp
from mailer.admin.compliance.subject_refs import address_of
from mailer.compliance import actors, staff_log
from mailer.compliance.models import StaffAccess
from mailer.extensions import db

PER_PAGE = 50
MAX_ACTION = 64


@bp.get("/audit-log")
@roles_required(*ADMIN)
def audit_log() -> tuple[str, int]:
    # Printable text only: PostgreSQL refuses NUL in a query parameter.
    action = "".join(ch for ch in request.args.get("action", "") if ch.isprintable())
    action = action.strip()[:MAX_ACTION] or None
    raw_subject = "".join(ch for ch in request.args.get("subject", "") if ch.isprintable())
    subject, errors = address_of(raw_subject)
    if errors:
        errors = {"subject": errors["email"]}
    page = min(max(1, request.args.get("page", 1, type=int) or 1), 1_000_000)
    rows, total = ([], 0)
    if not errors:
        rows, total = staff_log.page(
            db.session, page, PER_PAGE, action=action, subject_email=subject
        )
    known = db.session.scalars(
        select(StaffAccess.action).distinct().order_by(StaffAccess.action)
    ).all()
    html = render_template(
        "web/admin/compliance/audit_log.html",
        rows=rows,
        who=actors.names(db.session, rows),
        total=total,
        page=page,
        per_page=PER_PAGE,
        action=action or "",
        actions=known,
        subject=raw_subject[:320],
        errors=errors,
    )
    return html, 422 if errors else 200
