"""What the subscriber pages share: the staff audit log entry for each view of personal data,
and reading a page number."""

from __future__ import annotations

from typing import Any

from flask import request

from mailer.admin import access
from mailer.compliance import staff_log
from mailer.extensions import db

MAX_PAGE = 1_000_000


def log_access(
    action: str,
    subject_email: str | None = None,
    subscriber_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Put a view of personal data on the staff audit log, as the API does: the signed-in
    user, the route's rule (never its URL), the person as an HMAC. Commits."""
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    staff_log.record(
        db.session,
        access.staff(),
        action,
        f"{request.method} {rule}",
        subject_email=subject_email,
        subscriber_id=subscriber_id,
        details=details,
    )


def page_arg() -> int:
    raw = request.args.get("page", "1")
    page = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 8 else 1
    return min(max(page, 1), MAX_PAGE)


def htmx_fragment() -> bool:
    """An htmx request for part of a page (not a history restore, which wants it all)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )
