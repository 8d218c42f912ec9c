"""A person's address on the compliance pages: read from a form or query field, and referred
to in URLs only sealed (encrypted and authenticated), never as the address itself: URLs end up
in access logs, proxies and browser history."""

from __future__ import annotations

from flask import current_app

from mailer.api.fields import normalised_address
from mailer.settings import sealing

_SUBJECT_REF = b"mailer.admin.subject-ref.v1"
SUBJECT_REF_SECONDS = 8 * 3600  # a working day; then the officer searches again


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
