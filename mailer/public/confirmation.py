"""Confirming a sign-up (double opt-in) and asking for a new confirmation link.

GET shows a button and changes nothing (link scanners fetch every URL in a message); only the
POST confirms. A failed attempt counts against the IP's limit, a real confirmation never does.
"""

from __future__ import annotations

from flask import Response, current_app, render_template, request

from mailer.extensions import db, limiter
from mailer.public import visitor
from mailer.public.signed_links import bad_link, failed, load, locale_for, message_subscriber
from mailer.public.views import bp, settings, signup_limit
from mailer.subscribers import confirmation
from mailer.tokens import Purpose, TokenError


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> Response:
    payload, error = load(Purpose.CONFIRM, token)
    if error:
        return bad_link(error, Purpose.CONFIRM, token)
    locale_for(message_subscriber(payload.get("m")))
    return Response(render_template("web/public/confirm.html", token=token))


@bp.post("/confirm/<token>")
@limiter.limit(signup_limit, scope="confirm-ip", deduct_when=failed)
def confirm(token: str) -> Response:
    payload, error = load(Purpose.CONFIRM, token)
    if error:
        return bad_link(error, Purpose.CONFIRM, token)
    message_id = payload.get("m") if isinstance(payload, dict) else None
    locale_for(message_subscriber(message_id))
    try:
        outcome = confirmation.confirm(
            db.session, message_id, visitor.visit(), settings().server_name
        )
    except confirmation.NotConfirmable:
        return bad_link(TokenError(expired=False), Purpose.CONFIRM, token)
    links = current_app.extensions["mailer.delivery"].links
    page = "confirmed.html" if outcome.active else "nothing_to_confirm.html"
    return Response(
        render_template(
            f"web/public/{page}", preferences_url=links.preferences(outcome.subscriber_id)
        )
    )


@bp.post("/confirm/resend")
@limiter.limit(lambda: settings().resend_rate_limit, scope="resend-ip")
def resend() -> Response:
    token = str(request.form.get("token", ""))[:1024]
    try:
        payload = current_app.extensions["mailer.tokens"].loads(Purpose.CONFIRM, token)
    except TokenError as exc:
        if not (exc.expired and isinstance(exc.payload, dict)):
            return bad_link(exc, Purpose.CONFIRM, token)
        payload = exc.payload
    message_id = payload.get("m")
    locale_for(message_subscriber(message_id))
    if isinstance(message_id, int):
        confirmation.resend_confirmation(
            db.session, message_id, settings().confirmation_window, settings().server_name
        )
    # The same answer whether or not a message went out.
    return Response(render_template("web/public/check_inbox.html", form=None))
