"""The sign-up, accepted in front of Flask: the product's hot path after a campaign goes out.

A sign-up's own work is small (check a CSRF token and a signed start time, validate an
address, append one Redis stream entry), yet through Flask it cost five times a hello-world:
the request context, the session, Flask-Login, Babel, and six Redis round trips (four of them
Flask-Limiter's).
`SignupFastPath`, a plain WSGI layer around the app like the open pixel's, accepts the
ordinary sign-up itself: `POST /subscribe/<slug>` as urlencoded form data or JSON, with our
CSRF token or from an allowed Origin, valid, for a form in the process's cache. The rate
limits, the form's freshness and the intake are one Redis round trip
(`mailer.subscribers.admission`), which changes nothing unless it accepts.

Everything else goes to the Flask view (`views.subscribe`), untouched: every refusal (so
errors are rendered and translated in one place), the honeypot, multipart bodies, a form not
cached yet, a full rate-limit window, Redis down. Nothing has been written by then, so the
view decides as if the fast path did not exist. Its answer is the view's: the same page or
JSON, security headers and rate-limit headers (tests/public/test_signup_fast_path.py compares
them).

The checks are the view's own, done on the WSGI environ: the same schema (`SignupArgs`), the
same topic and version resolution (`intake.resolve`), the same evidence (`intake.Accepted`).
The CSRF check reads Flask's session cookie with Flask's own serializer and compares it as
Flask-WTF's `validate_csrf` does.
"""

from __future__ import annotations

import functools
import hmac
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from itsdangerous import BadData, URLSafeTimedSerializer
from limits import parse_many
from limits.storage import RedisStorage
from marshmallow import ValidationError
from redis.exceptions import RedisError
from werkzeug.datastructures import LanguageAccept, MIMEAccept, MultiDict
from werkzeug.http import parse_accept_header, parse_cookie
from werkzeug.middleware.proxy_fix import ProxyFix

from mailer import tasks
from mailer.consent.ledger import Visit, truncate_ip
from mailer.extensions import limiter
from mailer.public import views, visitor
from mailer.subscribers import form_cache, intake
from mailer.subscribers.admission import Admitter, Window
from mailer.subscribers.form_cache import CachedForm
from mailer.tokens import Purpose, TokenError
from mailer.web import NO_STORE, SECURITY_HEADERS

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# What the Flask rule "/subscribe/<slug>" matches.
PATH = re.compile(r"/subscribe/([^/]+)")
# A sign-up is a few hundred bytes; anything larger is odd and left to the view.
MAX_BODY = 8 * 1024
FORM = "application/x-www-form-urlencoded"
JSON_BODY = b'{"status":"pending"}\n'  # jsonify(status="pending")
CSRF_SALT = "wtf-csrf-token"  # Flask-WTF's
CHECK_INBOX_PAGES = "mailer.check_inbox_pages"  # rendered by the view, once per locale
VARY = ("Vary", "Cookie")  # the view reads the session whatever the request carries


class Handoff(Exception):
    """Not for the fast path: the Flask view takes the request."""


class SignupFastPath:
    """WSGI middleware: ordinary sign-ups accepted here, the rest by `inner`."""

    def __init__(self, app: Flask, inner: WSGIApp) -> None:
        self.app = app
        self.inner = inner
        self.settings = app.config["MAILER"]
        self.tokens = app.extensions["mailer.tokens"]
        self.forms = form_cache.cache(app)
        self.admitter = Admitter(app.extensions["mailer.redis"])
        self.csrf = _csrf_serializer(app)
        self.csrf_time_limit = app.config.get("WTF_CSRF_TIME_LIMIT", 3600)
        self.session_cookie = app.config["SESSION_COOKIE_NAME"]
        self.session_max_age = int(app.permanent_session_lifetime.total_seconds())
        self._limits: tuple[list[tuple[Any, bool]], str, str | None] | None = None

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST":
            match = PATH.fullmatch(environ.get("PATH_INFO", ""))
            if match is not None:
                try:
                    return self._accept(environ, start_response, match.group(1))
                except Handoff:
                    pass
        return self.inner(environ, start_response)

    def _accept(
        self, environ: dict[str, Any], start_response: Callable[..., Any], slug: str
    ) -> Iterable[bytes]:
        settings = self.settings
        length = environ.get("CONTENT_LENGTH") or ""
        if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY:
            raise Handoff
        # WSGI strings are latin-1: the slug as Werkzeug decodes it for the route.
        try:
            slug = slug.encode("latin-1").decode("utf-8", "replace")
        except UnicodeEncodeError:
            raise Handoff from None
        cached = self.forms.peek(slug) if views.SLUG_RE.match(slug) else None
        if cached is None:
            raise Handoff
        form, generation = cached
        mimetype = (environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()
        is_json = mimetype == "application/json" or (
            mimetype.startswith("application/") and mimetype.endswith("+json")
        )
        if not is_json and mimetype != FORM:
            raise Handoff
        body = environ["wsgi.input"].read(int(length))
        # The view reads the body again if it gets the request.
        environ["wsgi.input"] = io.BytesIO(body)
        data = _json_fields(body) if is_json else _form_fields(body)
        channel, origin, version_id = self._provenance(environ, form, data, is_json)
        if data.get(views.HONEYPOT):
            raise Handoff
        args_schema = views.SIGNUP_ARGS
        try:
            args = args_schema.load({k: v for k, v in data.items() if k in args_schema.fields})
            topics, version_id = intake.resolve(
                form, args["topics"], version_id or args["form_version"]
            )
        except (ValidationError, ValueError):  # the topic and version errors are ValueErrors
            raise Handoff from None
        locale = form.locale or self._locale(environ)
        wants_json = is_json or self._accepts_json(environ)
        page = None if wants_json else self.app.extensions.get(CHECK_INBOX_PAGES, {}).get(locale)
        if page is None and not wants_json:
            raise Handoff  # the view renders this language's page once, then it is cached
        remote = environ.get("REMOTE_ADDR")
        visit = Visit(
            ip=truncate_ip(remote) if settings.truncate_ip else remote,
            user_agent=environ.get("HTTP_USER_AGENT", "")[:1000] or None,
            locale=locale,
        )
        accepted = intake.Accepted.checked(form, args, topics, version_id, visit, channel, origin)
        windows, header = self._windows(remote or "127.0.0.1", args["email"])
        try:
            admission = self.admitter.admit(accepted, generation, windows, header)
        except RedisError:
            raise Handoff from None
        if admission.outcome != "accepted":
            raise Handoff
        if admission.kicked:
            tasks.enqueue(tasks.DRAIN_SIGNUPS)  # a failure is logged; `mailer cron` drains
        if wants_json:
            status, content_type, payload = "202 ACCEPTED", "application/json", JSON_BODY
        else:
            status, content_type, payload = "200 OK", "text/html; charset=utf-8", page.encode()
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(payload))),
            *SECURITY_HEADERS,
            NO_STORE,
        ]
        if header is not None and self.app.config.get("RATELIMIT_HEADERS_ENABLED"):
            reset_at = int(admission.reset_at + 1)
            headers += [
                ("X-RateLimit-Limit", str(windows[header].amount)),
                ("X-RateLimit-Remaining", str(admission.remaining)),
                ("X-RateLimit-Reset", str(reset_at)),
                ("Retry-After", str(int(reset_at - time.time()))),
            ]
        headers.append(VARY)
        start_response(status, headers)
        return [payload]

    def _provenance(
        self, environ: dict[str, Any], form: CachedForm, data: dict[str, Any], is_json: bool
    ) -> tuple[str, str | None, int | None]:
        """(channel, origin, version shown), as `views._check_provenance` finds them when it
        lets the request through."""
        token = data.get("csrf_token")
        if token:
            self._check_csrf(environ, token)
            try:
                started = self.tokens.loads(Purpose.FORM_STARTED, str(data.get("started") or ""))
                started_at, version_id = float(started["t"]), int(started["v"])
            except (TokenError, KeyError, TypeError, ValueError):
                raise Handoff from None
            if time.time() - started_at < self.settings.min_fill_seconds:
                raise Handoff
            return "hosted", None, version_id
        origin = environ.get("HTTP_ORIGIN", "")
        allowed = {visitor.origin_of(o) for o in form.allowed_origins}
        if origin and visitor.origin_of(origin) in allowed:
            return ("json" if is_json else "embed"), visitor.origin_of(origin), None
        raise Handoff

    def _check_csrf(self, environ: dict[str, Any], token: Any) -> None:
        """Flask-WTF's `validate_csrf`, on the session cookie read with Flask's serializer."""
        cookie = parse_cookie(environ).get(self.session_cookie)
        signing = getattr(self.app.session_interface, "get_signing_serializer", None)
        serializer = signing(self.app) if signing is not None else None
        if not cookie or serializer is None or not isinstance(token, str):
            raise Handoff
        try:
            session = serializer.loads(cookie, max_age=self.session_max_age)
            expected = session["csrf_token"]
            signed = self.csrf.loads(token, max_age=self.csrf_time_limit)
        except (BadData, KeyError, TypeError):
            raise Handoff from None
        if not (isinstance(expected, str) and isinstance(signed, str)):
            raise Handoff
        if not hmac.compare_digest(expected, signed):
            raise Handoff

    def _locale(self, environ: dict[str, Any]) -> str:
        best = _best_language(environ.get("HTTP_ACCEPT_LANGUAGE"), self.settings.locales)
        return best or self.settings.default_locale

    @staticmethod
    def _accepts_json(environ: dict[str, Any]) -> bool:
        return _prefers_json(environ.get("HTTP_ACCEPT"))

    def _windows(self, remote: str, email: str) -> tuple[list[Window], int | None]:
        """The view's rate-limit windows, keyed as Flask-Limiter keys them (the limit, the
        client address or the address signed up, the view's endpoint and scope), and the one
        the X-RateLimit headers report. Flask-Limiter evaluates a view's limits sorted by
        period, ties in the order its decorators were applied (the inner, per-address one
        first), and reports the first: so does this."""
        if not limiter.enabled:
            return [], None
        if self._limits is None:
            storage = limiter.storage
            if not isinstance(storage, RedisStorage):
                raise Handoff  # the script needs the limits in the intake's Redis
            limits = [(item, False) for item in parse_many(self.settings.address_rate_limit)]
            limits += [(item, True) for item in parse_many(self.settings.signup_rate_limit)]
            limits.sort(key=lambda limit: limit[0])  # stable, as Python's sort is
            self._limits = (limits, storage.key_prefix, self.app.config.get("RATELIMIT_KEY_PREFIX"))
        limits, storage_prefix, prefix = self._limits
        endpoint = views.SIGNUP_ENDPOINT
        by_ip = [remote, f"{endpoint}:{views.SIGNUP_IP_SCOPE}"]
        by_address = [
            visitor.address_key_of_normalised(email, self.settings.ledger_key),
            f"{endpoint}:{views.ADDRESS_SCOPE}",
        ]
        if prefix:
            by_ip.insert(0, prefix)
            by_address.insert(0, prefix)
        windows = [
            Window(
                f"{storage_prefix}:{item.key_for(*(by_ip if per_ip else by_address))}",
                item.amount,
                item.get_expiry(),
            )
            for item, per_ip in limits
        ]
        return windows, (0 if windows else None)


# Browsers send few distinct Accept and Accept-Language headers: each is parsed once.
@functools.lru_cache(maxsize=512)
def _best_language(header: str | None, locales: tuple[str, ...]) -> str | None:
    return parse_accept_header(header, LanguageAccept).best_match(locales)


@functools.lru_cache(maxsize=512)
def _prefers_json(header: str | None) -> bool:
    """`web.wants_json` for a request that is not JSON itself."""
    best = parse_accept_header(header, MIMEAccept).best_match(["text/html", "application/json"])
    return best == "application/json"


def _csrf_serializer(app: Flask) -> URLSafeTimedSerializer:
    secret = app.config.get("WTF_CSRF_SECRET_KEY") or app.secret_key
    return URLSafeTimedSerializer(secret, salt=CSRF_SALT)


def _form_fields(body: bytes) -> dict[str, Any]:
    """As the view sees `request.form`: the first value of each field, every topic."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise Handoff from None
    form = MultiDict(parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"))
    data: dict[str, Any] = {key: form.get(key) for key in form}
    data["topics"] = form.getlist("topics")
    return data


def _json_fields(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise Handoff from None
    if not isinstance(data, dict):
        raise Handoff
    return data


def install(app: Flask) -> None:
    """Put the fast path in front of the app, inside ProxyFix if there is one (the limits and
    the evidence need the client address ProxyFix works out)."""
    wsgi = app.wsgi_app
    if isinstance(wsgi, ProxyFix):
        wsgi.app = SignupFastPath(app, wsgi.app)
    else:
        app.wsgi_app = SignupFastPath(app, wsgi)  # type: ignore[method-assign]
