"""Putting each admin page's view, export or erasure of personal data on the staff audit log
(thin glue between the request and `mailer.compliance.staff_log`, as `mailer.api.access_log`
is for the API)."""

from __future__ import annotations

from typing import Any

from flask import request

from mailer.admin import access
from mailer.compliance import staff_log
from mailer.extensions import db


def log_access(
    action: str,
    subject_email: str | None = None,
    subscriber_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record who (the signed-in user) did what to whom, by the route's rule (never its URL,
    which may hold an address), the person as an HMAC. Commits, before any data is sent."""
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
