"""The visitor's blueprint, and its sign-up pages: the form, the embed snippet, the POST.
Thin: parse, call, render. Confirmation, preferences, unsubscribe and data rights register on
the same blueprint (`confirmation`, `preference_pages`, `data_rights`).

GET and HEAD never change anything here, so link scanners that fetch every URL in a message
cannot confirm or unsubscribe anyone; every change is a POST.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, validate_csrf
from marshmallow import ValidationError
from redis.exceptions import RedisError
from sqlalchemy import select

from mailer import tasks
from mailer.config import Settings
from mailer.extensions import csrf, db, jobs, limiter
from mailer.public import visitor
from mailer.subscribers import form_cache, intake, signup
from mailer.subscribers.form_cache import CachedForm
from mailer.subscribers.models import Form
from mailer.subscribers.schemas import SLUG, SignupArgs, messages
from mailer.tokens import Purpose, TokenError
from mailer.web import CSP, error_response, wants_json

bp = Blueprint("public", __name__)

HONEYPOT = "website"
SIGNUP_ARGS = SignupArgs()
SLUG_RE = re.compile(SLUG)
# The sign-up's rate limits, as Flask-Limiter keys them (the fast path draws on the same).
SIGNUP_ENDPOINT = "public.subscribe"
SIGNUP_IP_SCOPE = "signup-ip"
ADDRESS_SCOPE = "address"


@bp.record_once
def _install(state: Any) -> None:
    from mailer.public import signup_path

    form_cache.install(state.app)
    signup_path.install(state.app)


def settings() -> Settings:
    return current_app.config["MAILER"]


def _tokens():
    return current_app.extensions["mailer.tokens"]


def _form_or_404(slug: str) -> Form:
    form = None
    if SLUG_RE.match(slug):
        form = db.session.scalar(select(Form).where(Form.slug == slug))
    if form is None or not form.versions:
        abort(error_response(404, {"form": [_("There is no sign-up form at this address.")]}))
    if form.locale:
        g.locale = form.locale
    return form


def _load_form(slug: str) -> Form | None:
    return db.session.scalar(select(Form).where(Form.slug == slug))


def _cached_form_or_404(slug: str, fresh: bool = False) -> CachedForm:
    """`_form_or_404` for the sign-up POST: from the process's form cache, no SQL."""
    form = None
    if SLUG_RE.match(slug):
        form = form_cache.cache(current_app).get(slug, lambda: _load_form(slug), fresh=fresh)
    if form is None:
        abort(error_response(404, {"form": [_("There is no sign-up form at this address.")]}))
    if form.locale:
        g.locale = form.locale
    return form


def signup_limit() -> str:
    return settings().signup_rate_limit


def _address_limit() -> str:
    return settings().address_rate_limit


def _render_form(
    form: Form, status: int = 200, errors: dict | None = None, values: dict | None = None
) -> Response:
    started = _tokens().dumps(
        Purpose.FORM_STARTED, {"t": int(time.time()), "v": form.current_version.id}
    )
    html = render_template(
        "web/public/subscribe.html",
        form=form,
        version=form.current_version,
        started=started,
        errors=errors or {},
        values=values or {},
        honeypot=HONEYPOT,
    )
    return Response(html, status=status)


def _embed_snippet(form: Form) -> str:
    return render_template(
        "web/public/embed_snippet.html",
        form=form,
        version=form.current_version,
        action=f"{settings().base_url}/subscribe/{form.slug}",
        honeypot=HONEYPOT,
    )


@bp.get("/subscribe/<slug>")
def subscribe_form(slug: str) -> Response:
    response = _render_form(_form_or_404(slug))
    # The admin's phone-width preview frames this page: our own origin may, no other site.
    response.headers["Content-Security-Policy"] = CSP.replace(
        "frame-ancestors 'none'", "frame-ancestors 'self'"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.get("/subscribe/<slug>/embed")
def embed(slug: str) -> Response:
    form = _form_or_404(slug)
    return Response(_embed_snippet(form), mimetype="text/plain")


@bp.post("/subscribe/<slug>")
@csrf.exempt  # checked below: our token, or an Origin on the form's allow-list
@limiter.limit(signup_limit, scope=SIGNUP_IP_SCOPE)
@limiter.limit(_address_limit, key_func=visitor.address_key, scope=ADDRESS_SCOPE)
def subscribe(slug: str) -> Response:
    """Check the request, then accept it into the sign-up intake (one Redis XADD, no SQL):
    the workers write it within seconds (`mailer.subscribers.drain`). The ordinary sign-up
    is accepted before it gets here, with the same checks (`signup_path`); this view answers
    the rest, refusals included."""
    form = _cached_form_or_404(slug)
    data = visitor.body()
    provenance = _check_provenance(form, data)
    if isinstance(provenance, Response):
        return provenance
    if data.get(HONEYPOT):
        return _accepted(form)  # a bot: say the same as always, do nothing
    try:
        args = SIGNUP_ARGS.load({k: v for k, v in data.items() if k in SIGNUP_ARGS.fields})
    except ValidationError as exc:
        return _invalid(form, messages(exc.messages), data)
    version_id = provenance.version_id or args["form_version"]
    try:
        try:
            topics, version_id = intake.resolve(form, args["topics"], version_id)
        except ValueError:
            # Refused by the cached form: make sure with the form as it is now.
            form = _cached_form_or_404(slug, fresh=True)
            topics, version_id = intake.resolve(form, args["topics"], version_id)
    except signup.NoTopicChosen:
        return _invalid(form, {"topics": [_("Choose at least one topic.")]}, data)
    except signup.UnknownTopics as exc:
        return _invalid(
            form, {"topics": [_("Unknown topic: %(slugs)s", slugs=", ".join(exc.slugs))]}, data
        )
    except signup.UnknownFormVersion:
        return _invalid(form, {"form_version": [_("The form has changed. Reload it.")]}, data)
    accepted = intake.Accepted.checked(
        form, args, topics, version_id, visitor.visit(), provenance.channel, provenance.origin
    )
    try:
        kicked = intake.push(jobs.redis, accepted)
    except RedisError:
        # Redis is down: write the sign-up here and now rather than turn the person away.
        config = settings()
        signup.request_subscription(
            db.session, accepted.request(), config.confirmation_window, config.server_name
        )
        return _accepted(form)
    if kicked:
        tasks.enqueue(tasks.DRAIN_SIGNUPS)
    return _accepted(form)


@dataclass(frozen=True)
class Provenance:
    """How a sign-up reached us, kept as evidence: our hosted form, the embed snippet, or a
    script; and which consent text version the hosted form showed."""

    channel: str  # hosted | embed | json
    origin: str | None = None
    version_id: int | None = None


def _check_provenance(form: CachedForm, data: dict[str, Any]) -> Provenance | Response:
    """Cross-site request forgery and bots: our form carries a CSRF token and a signed start
    time (with the consent text version it showed); the embed snippet and fetch() carry an
    Origin the form allows. The Origin check stops forgery by other sites, not scripts: those
    meet the honeypot and the rate limits."""
    token = data.get("csrf_token")
    if token:
        try:
            validate_csrf(token)
        except (CSRFError, ValueError, TypeError):
            return _invalid(
                form,
                {"csrf_token": [_("The form has expired. Reload the page and try again.")]},
                data,
            )
        try:
            started = _tokens().loads(Purpose.FORM_STARTED, str(data.get("started") or ""))
            started_at, version_id = float(started["t"]), int(started["v"])
        except (TokenError, KeyError, TypeError, ValueError):
            return _invalid(
                form, {"started": [_("The form has expired. Reload the page and try again.")]}, data
            )
        if time.time() - started_at < settings().min_fill_seconds:
            return _invalid(
                form,
                {"started": [_("That was quick! Please check the form and send it again.")]},
                data,
            )
        return Provenance("hosted", None, version_id)
    origin = request.headers.get("Origin", "")
    allowed = {visitor.origin_of(o) for o in form.allowed_origins or []}
    if origin and visitor.origin_of(origin) in allowed:
        return Provenance("json" if request.is_json else "embed", visitor.origin_of(origin))
    return error_response(
        403, {"origin": [_("This form does not accept submissions from this site.")]}
    )


def _accepted(form: CachedForm) -> Response:
    if wants_json():
        response = jsonify(status="pending")
        response.status_code = 202
        return response
    return Response(_check_inbox_page())


def _check_inbox_page() -> str:
    """The "check your inbox" page: the same for every sign-up in a language, so rendered once
    per language and process (a burst of sign-ups is a burst of this page)."""
    pages = current_app.extensions.setdefault("mailer.check_inbox_pages", {})
    locale = visitor.current_locale()
    if locale not in pages:
        pages[locale] = render_template("web/public/check_inbox.html", form=None)
    return pages[locale]


def _invalid(form: CachedForm, errors: dict[str, list[str]], data: dict[str, Any]) -> Response:
    if wants_json():
        return error_response(400, errors)
    values = {k: v for k, v in data.items() if k in {"email", "name", "topics"}}
    return _render_form(_form_or_404(form.slug), status=400, errors=errors, values=values)


# The pages behind signed links, and the self-service data rights, register on `bp` too.
from mailer.public import confirmation, data_rights, preference_pages  # noqa: E402, F401
