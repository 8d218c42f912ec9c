"""What the compliance views share: putting an access on the staff audit log, reading an
address, and referring to a person in URLs without their address."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from mailer.admin import access
from mailer.api.common import normalised_address
from mailer.compliance import staff_log
from mailer.extensions import db
from mailer.settings import sealing

# A subject's pages are addressed by the address sealed (encrypted and authenticated), never
# by the address itself: URLs end up in access logs, proxies and browser history.
_SUBJECT_REF = b"mailer.admin.subject-ref.v1"
SUBJECT_REF_SECONDS = 8 * 3600  # a working day; then the officer searches again


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


def subject_ref(address: str) -> str:
    return sealing.seal(current_app.config["MAILER"].secret_key, address.encode(), _SUBJECT_REF)


def address_from_ref(ref: str) -> str | None:
    """The address a `subject_ref` was made for; None if forged, damaged or too old."""
    try:
        raw = sealing.open_(
            current_app.config["MAILER"].secret_key, ref, _SUBJECT_REF, SUBJECT_REF_SECONDS
        )
    except sealing.SealError:
        return None
    return raw.decode("utf-8", "replace")
