"""The visitor's pages: sign up, confirm, manage topics, unsubscribe. Thin: parse, call, render.

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
from mailer.consent.models import ConsentSource
from mailer.database import utcnow
from mailer.delivery.models import OutboundMessage
from mailer.extensions import csrf, db, jobs, limiter
from mailer.public import visitor
from mailer.subscribers import form_cache, intake, preferences, signup
from mailer.subscribers.form_cache import CachedForm
from mailer.subscribers.models import Form, Subscriber, SubscriptionStatus
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


def _settings():
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


def _signup_limit() -> str:
    return _settings().signup_rate_limit


def _address_limit() -> str:
    return _settings().address_rate_limit


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
        action=f"{_settings().base_url}/subscribe/{form.slug}",
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
@limiter.limit(_signup_limit, scope=SIGNUP_IP_SCOPE)
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
    accepted = intake.Accepted(
        form_id=form.id,
        form_version_id=version_id,
        email=args["email"],
        name=args["name"] if form.ask_name else "",
        topics=tuple(topics),
        at=utcnow(),
        visit=visitor.visit(),
        channel=provenance.channel,
        origin=provenance.origin,
    )
    try:
        kicked = intake.push(jobs.redis, accepted)
    except RedisError:
        # Redis is down: write the sign-up here and now rather than turn the person away.
        settings = _settings()
        signup.request_subscription(
            db.session, accepted.request(), settings.confirmation_window, settings.server_name
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
        if time.time() - started_at < _settings().min_fill_seconds:
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


# --- confirm -------------------------------------------------------------------------------


def _load(purpose: Purpose, token: str) -> tuple[Any, TokenError | None]:
    try:
        return _tokens().loads(purpose, token), None
    except TokenError as exc:
        return None, exc


def _bad_link(error: TokenError, purpose: Purpose, token: str) -> Response:
    # An expired confirmation with a good signature can be renewed.
    can_resend = purpose is Purpose.CONFIRM and error.expired and error.payload is not None
    html = render_template(
        "web/public/bad_link.html", expired=error.expired, can_resend=can_resend, token=token
    )
    return Response(html, status=410 if error.expired else 400)


def _locale_for(subscriber_id: int | None) -> None:
    if subscriber_id is None:
        return
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is not None:
        g.locale = subscriber.locale


def _message_subscriber(message_id: Any) -> int | None:
    if not isinstance(message_id, int):
        return None
    message = db.session.get(OutboundMessage, message_id)
    return message.subscriber_id if message else None


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> Response:
    payload, error = _load(Purpose.CONFIRM, token)
    if error:
        return _bad_link(error, Purpose.CONFIRM, token)
    _locale_for(_message_subscriber(payload.get("m")))
    return Response(render_template("web/public/confirm.html", token=token))


def _failed(response: Response) -> bool:
    return response.status_code >= 400


# Token endpoints count only failed attempts against the limit (guessing), never real use:
# Gmail's and Yahoo's one-click POSTs come from few IPs and must all be honoured.
@bp.post("/confirm/<token>")
@limiter.limit(_signup_limit, scope="confirm-ip", deduct_when=_failed)
def confirm(token: str) -> Response:
    payload, error = _load(Purpose.CONFIRM, token)
    if error:
        return _bad_link(error, Purpose.CONFIRM, token)
    message_id = payload.get("m") if isinstance(payload, dict) else None
    _locale_for(_message_subscriber(message_id))
    try:
        outcome = signup.confirm(db.session, message_id, visitor.visit(), _settings().server_name)
    except signup.NotConfirmable:
        return _bad_link(TokenError(expired=False), Purpose.CONFIRM, token)
    links = current_app.extensions["mailer.delivery"].links
    page = "confirmed.html" if outcome.active else "nothing_to_confirm.html"
    return Response(
        render_template(
            f"web/public/{page}", preferences_url=links.preferences(outcome.subscriber_id)
        )
    )


@bp.post("/confirm/resend")
@limiter.limit(lambda: _settings().resend_rate_limit, scope="resend-ip")
def resend() -> Response:
    token = str(request.form.get("token", ""))[:1024]
    try:
        payload = _tokens().loads(Purpose.CONFIRM, token)
    except TokenError as exc:
        if not (exc.expired and isinstance(exc.payload, dict)):
            return _bad_link(exc, Purpose.CONFIRM, token)
        payload = exc.payload
    message_id = payload.get("m")
    _locale_for(_message_subscriber(message_id))
    if isinstance(message_id, int):
        signup.resend_confirmation(
            db.session, message_id, _settings().confirmation_window, _settings().server_name
        )
    # The same answer whether or not a message went out.
    return Response(render_template("web/public/check_inbox.html", form=None))


# --- preferences and unsubscribe -----------------------------------------------------------


def _subscriber_from(
    purpose: Purpose, token: str
) -> tuple[Subscriber | None, Any, Response | None]:
    payload, error = _load(purpose, token)
    if error:
        return None, None, _bad_link(error, purpose, token)
    subscriber_id = payload.get("s") if isinstance(payload, dict) else None
    subscriber = (
        db.session.get(Subscriber, subscriber_id) if isinstance(subscriber_id, int) else None
    )
    if subscriber is None:
        return None, None, _bad_link(TokenError(expired=False), purpose, token)
    g.locale = subscriber.locale
    return subscriber, payload, None


def _statement() -> str:
    """What the preference page says ticking means; recorded word for word as evidence."""
    return _(
        "Ticking a topic means you agree to receive our emails about it. "
        "You can untick it here at any time."
    )


def _preferences_page(subscriber: Subscriber, token: str, saved: bool = False) -> Response:
    html = render_template(
        "web/public/preferences.html",
        statement=_statement(),
        subscriber=subscriber,
        subscriptions=subscriber.subscriptions,
        active=SubscriptionStatus.ACTIVE,
        token=token,
        saved=saved,
    )
    return Response(html)


@bp.get("/preferences/<token>")
def preferences_page(token: str) -> Response:
    subscriber, _payload, problem = _subscriber_from(Purpose.PREFERENCES, token)
    return problem or _preferences_page(subscriber, token)


@bp.post("/preferences/<token>")
@limiter.limit(_signup_limit, scope="preferences-ip", deduct_when=_failed)
def preferences_save(token: str) -> Response:
    subscriber, _payload, problem = _subscriber_from(Purpose.PREFERENCES, token)
    if problem:
        return problem
    if request.form.get("action") == "unsubscribe_all":
        preferences.withdraw(
            db.session,
            subscriber.id,
            None,
            ConsentSource.PREFERENCES,
            visitor.visit(),
            evidence={"method": "preference_center_unsubscribe_all"},
        )
    else:
        wanted = {str(s)[:64] for s in request.form.getlist("topics")}
        preferences.update(
            db.session, subscriber.id, wanted, visitor.visit(), statement=_statement()
        )
    db.session.refresh(subscriber)
    return _preferences_page(subscriber, token, saved=True)


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> Response:
    _subscriber, _payload, problem = _subscriber_from(Purpose.UNSUBSCRIBE, token)
    if problem:
        return problem
    return Response(render_template("web/public/unsubscribe.html", token=token))


@bp.post("/unsubscribe/<token>")
@csrf.exempt  # RFC 8058: the mail client's POST has no cookies; the signed token is the proof
@limiter.limit(_signup_limit, scope="unsubscribe-ip", deduct_when=_failed)
def unsubscribe(token: str) -> Response:
    subscriber, payload, problem = _subscriber_from(Purpose.UNSUBSCRIBE, token)
    if problem:
        return problem
    topics = payload.get("t")
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    preferences.withdraw(
        db.session,
        subscriber.id,
        [str(t) for t in topics] if isinstance(topics, list) else None,
        ConsentSource.UNSUBSCRIBE,
        visitor.visit(),
        evidence={
            "method": "one_click" if one_click else "unsubscribe_page",
            "message": payload.get("m"),
        },
    )
    links = current_app.extensions["mailer.delivery"].links
    # 200 with a page, never a redirect (RFC 8058).
    return Response(
        render_template(
            "web/public/unsubscribed.html", preferences_url=links.preferences(subscriber.id)
        )
    )


# Self-service data rights (download, erase) from the preference page register on `bp` too.
from mailer.public import data_rights  # noqa: E402, F401
