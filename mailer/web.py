"""What every page and endpoint shares: error answers, security headers, JSON-or-HTML."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DisconnectionError, OperationalError
from werkzeug.exceptions import HTTPException

from mailer.api.errors import ApiError, flatten

log = logging.getLogger(__name__)

# A store the request needs cannot be reached (PostgreSQL restarting, SQLite locked past its
# timeout, Redis gone): the caller can retry, so say so rather than answer 500.
UNAVAILABLE = (OperationalError, DisconnectionError, RedisConnectionError, RedisTimeoutError)
RETRY_AFTER_SECONDS = 5

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def wants_json() -> bool:
    if request.is_json or request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def htmx_fragment() -> bool:
    """An htmx request for part of a page (not a history restore, which wants it all)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def error_response(status: int, errors: dict[str, list[str]], title: str | None = None) -> Response:
    """One shape for every error: JSON `{"errors": {field: [message]}}`, or a page listing them."""
    if wants_json():
        response = jsonify(errors=errors)
    else:
        response = Response(
            render_template("web/error.html", status=status, title=title, errors=errors)
        )
    response.status_code = status
    return response


def _http_error(exc: HTTPException) -> Response:
    code = exc.code or 500
    if isinstance(exc, ApiError):
        return _with_headers(error_response(code, exc.errors), exc)
    data = getattr(exc, "data", None) or {}
    if "messages" in data or "errors" in data:  # webargs / flask-smorest validation
        errors = flatten(data.get("errors") or data["messages"])
        return _with_headers(error_response(code, errors), exc)
    if "message" in data:  # flask_smorest.abort(404, message=...)
        return _with_headers(error_response(code, {"request": [str(data["message"])]}), exc)
    messages: dict[int, tuple[str, str]] = {
        400: ("request", _("The request could not be understood.")),
        403: ("request", _("You are not allowed to do that.")),
        404: ("url", _("There is nothing at this address.")),
        405: ("method", _("This address does not accept that method.")),
        413: ("body", _("The request is too large.")),
        415: ("content_type", _("Send the form as form data or as JSON.")),
    }
    field, message = messages.get(code, ("request", _("Something went wrong.")))
    response = error_response(code, {field: [message]}, title=_("Something went wrong"))
    return _with_headers(response, exc)


def _with_headers(response: Response, exc: HTTPException) -> Response:
    # Keep what the exception says in headers (Allow on a 405, WWW-Authenticate, ...).
    for key, value in exc.get_headers():
        if key.lower() != "content-type":
            response.headers[key] = value
    return response


def _rate_limited(exc: RateLimitExceeded) -> Response:
    field = "email" if getattr(exc.limit, "scope", "") == "address" else "request"
    message = _("Too many attempts. Please wait a while and try again.")
    response = error_response(429, {field: [message]}, title=_("Too many attempts"))
    return response


def _csrf_error(exc: CSRFError) -> Response:
    return error_response(
        400, {"csrf_token": [_("The form has expired. Reload the page and try again.")]}
    )


def _too_deep(exc: RecursionError) -> Response:
    # JSON nested thousands deep exhausts the parser before any schema sees it.
    return error_response(400, {"request": [_("The request could not be understood.")]})


def _unavailable(exc: Exception) -> Response:
    # The engine hides SQL parameters (`hide_parameters`): no personal data reaches the log.
    log.error(
        "%s %s: a database or Redis is unavailable", request.method, request.path, exc_info=exc
    )
    response = error_response(
        503,
        {"request": [_("The service is briefly unavailable. Try again in a moment.")]},
        title=_("Briefly unavailable"),
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _server_error(exc: Any) -> Response:
    return error_response(500, {"request": [_("Something went wrong on our side. Try again.")]})


SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    # Our URLs carry tokens: never leak them to another site through Referer.
    ("Referrer-Policy", "no-referrer"),
)
NO_STORE = ("Cache-Control", "no-store")  # every answer but static files


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS:
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        response.headers.setdefault(*NO_STORE)
    return response


def register(app: Flask) -> None:
    app.register_error_handler(RateLimitExceeded, _rate_limited)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RecursionError, _too_deep)
    for unavailable in UNAVAILABLE:
        app.register_error_handler(unavailable, _unavailable)
    app.register_error_handler(500, _server_error)
    app.after_request(_security_headers)
    app.context_processor(lambda: {"current_locale": lambda: str(get_locale() or "en")})
