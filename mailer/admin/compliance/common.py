"""What the compliance views share: putting an access on the staff audit log."""

from __future__ import annotations

from typing import Any

from flask import request

from mailer.admin import access
from mailer.api.common import normalised_address
from mailer.compliance import staff_log
from mailer.extensions import db


def log(
    action: str,
    subject_email: str | None = None,
    subscriber_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record who (the signed-in user) did what to whom, by the route's rule (never its URL,
    which may hold an address). Commits, before any data is sent."""
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


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def address_of(raw: str | None) -> tuple[str | None, dict[str, list[str]]]:
    """The normalised address from a form or query field (None when empty), or the error
    naming the field `email`."""
    raw = (raw or "").strip()
    if not raw:
        return None, {}
    try:
        return normalised_address(raw), {}
    except ValueError:
        return None, {"email": ["not a valid email address"]}
