"""Putting each API view or export of personal data on the staff audit log (thin glue between
the request and `mailer.compliance.staff_log`)."""

from __future__ import annotations

from typing import Any

from flask import request

from mailer.api.auth import current_key
from mailer.compliance import staff_log
from mailer.extensions import db


def log_access(
    action: str,
    subject_email: str | None = None,
    subscriber_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record who (the request's API key) did what (`action`, the route's rule, never its
    URL, which may hold an address) to whom. Commits, before the data is sent."""
    staff_log.record(
        db.session,
        current_staff(),
        action,
        endpoint(),
        subject_email=subject_email,
        subscriber_id=subscriber_id,
        details=details,
    )


def current_staff() -> staff_log.Staff:
    """The request's API key as the staff audit log names it."""
    key = current_key()
    return staff_log.Staff(api_key_id=key.id, api_key_name=key.name, ip=request.remote_addr)


def endpoint() -> str:
    """`METHOD rule`: the route's rule, never its URL, which may hold an address."""
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    return f"{request.method} {rule}"
