"""What the public views need from a request: the visit as evidence, origins, the body."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, g, request
from flask_babel import gettext as _
from werkzeug.exceptions import UnsupportedMediaType

from mailer.consent.ledger import Visit, truncate_ip
from mailer.subscribers.schemas import normalise_email
from mailer.web import error_response


def visit() -> Visit:
    settings = current_app.config["MAILER"]
    ip = truncate_ip(request.remote_addr) if settings.truncate_ip else request.remote_addr
    return Visit(
        ip=ip,
        user_agent=request.headers.get("User-Agent", "")[:1000] or None,
        locale=g.get("locale") or current_locale(),
    )


def current_locale() -> str:
    from flask_babel import get_locale

    locale = get_locale()
    return str(locale) if locale else current_app.config["MAILER"].default_locale


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def body() -> dict[str, Any]:
    """The submitted fields, from JSON or form data; anything else is a 415."""
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nested deeper than the parser goes; still the sender's fault
            data = None
        if not isinstance(data, dict):
            abort(error_response(400, {"body": [_("Send a JSON object with the form's fields.")]}))
        return data
    mimetype = request.mimetype
    if mimetype not in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        raise UnsupportedMediaType()
    data: dict[str, Any] = {key: request.form.get(key) for key in request.form}
    data["topics"] = request.form.getlist("topics")
    return data


def address_key() -> str:
    """Rate-limit key for the address being signed up (list bombing of one victim)."""
    raw: Any = None
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:
            data = None
        raw = data.get("email") if isinstance(data, dict) else None
    else:
        raw = request.form.get("email")
    return address_key_of(raw, current_app.config["MAILER"].ledger_key)


def address_key_of(raw: Any, ledger_key: bytes) -> str:
    """`address_key` of a submitted email field (also the sign-up's fast path's)."""
    if not isinstance(raw, str):
        return "address:"
    raw = raw.strip()[:320]
    try:
        # The same normal form the subscriber is stored under: look-alike spellings of one
        # address (full-width letters, case) share one budget.
        address = normalise_email(raw)
    except ValueError:
        address = raw.lower()
    return address_key_of_normalised(address, ledger_key)


def address_key_of_normalised(address: str, ledger_key: bytes) -> str:
    """`address_key` of an address already in its normal form (`normalise_email`)."""
    # Redis keeps the key for the limit's window: an HMAC, never the address itself.
    return "address:" + hmac.new(ledger_key, address.encode(), hashlib.sha256).hexdigest()
