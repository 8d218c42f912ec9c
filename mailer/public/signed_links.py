"""What the pages behind a signed link share: reading the token, the page for a bad one, and
the visitor's language from the subscriber the link is for."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, g, render_template

from mailer.delivery.models import OutboundMessage
from mailer.extensions import db
from mailer.subscribers.models import Subscriber
from mailer.tokens import Purpose, TokenError


def load(purpose: Purpose, token: str) -> tuple[Any, TokenError | None]:
    try:
        return current_app.extensions["mailer.tokens"].loads(purpose, token), None
    except TokenError as exc:
        return None, exc


def bad_link(error: TokenError, purpose: Purpose, token: str) -> Response:
    # An expired confirmation with a good signature can be renewed.
    can_resend = purpose is Purpose.CONFIRM and error.expired and error.payload is not None
    html = render_template(
        "web/public/bad_link.html", expired=error.expired, can_resend=can_resend, token=token
    )
    return Response(html, status=410 if error.expired else 400)


def locale_for(subscriber_id: int | None) -> None:
    if subscriber_id is None:
        return
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is not None:
        g.locale = subscriber.locale


def message_subscriber(message_id: Any) -> int | None:
    if not isinstance(message_id, int):
        return None
    message = db.session.get(OutboundMessage, message_id)
    return message.subscriber_id if message else None


def failed(response: Response) -> bool:
    """For rate limits that count only failed attempts (guessing at tokens), never real use:
    Gmail's and Yahoo's one-click POSTs come from few IPs and must all be honoured."""
    return response.status_code >= 400


def subscriber_from(purpose: Purpose, token: str) -> tuple[Subscriber | None, Any, Response | None]:
    """(subscriber, payload, None), or (None, None, the bad-link page)."""
    payload, error = load(purpose, token)
    if error:
        return None, None, bad_link(error, purpose, token)
    subscriber_id = payload.get("s") if isinstance(payload, dict) else None
    subscriber = (
        db.session.get(Subscriber, subscriber_id) if isinstance(subscriber_id, int) else None
    )
    if subscriber is None:
        return None, None, bad_link(TokenError(expired=False), purpose, token)
    g.locale = subscriber.locale
    return subscriber, payload, None
