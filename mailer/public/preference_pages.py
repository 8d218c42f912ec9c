"""The preference page (topics, unsubscribe from everything) and the unsubscribe link.

GET never changes anything; every change is a POST, and each is recorded in the consent ledger
with the words the page showed. The unsubscribe POST answers RFC 8058 one-click requests,
which come without cookies: the signed token is the proof.
"""

from __future__ import annotations

from flask import Response, current_app, render_template, request
from flask_babel import gettext as _

from mailer.consent.models import ConsentSource
from mailer.extensions import csrf, db, limiter
from mailer.public import visitor
from mailer.public.signed_links import failed, subscriber_from
from mailer.public.views import bp, signup_limit
from mailer.subscribers import preferences
from mailer.subscribers.models import Subscriber, SubscriptionStatus
from mailer.tokens import Purpose


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
    subscriber, _payload, problem = subscriber_from(Purpose.PREFERENCES, token)
    return problem or _preferences_page(subscriber, token)


@bp.post("/preferences/<token>")
@limiter.limit(signup_limit, scope="preferences-ip", deduct_when=failed)
def preferences_save(token: str) -> Response:
    subscriber, _payload, problem = subscriber_from(Purpose.PREFERENCES, token)
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
    _subscriber, _payload, problem = subscriber_from(Purpose.UNSUBSCRIBE, token)
    if problem:
        return problem
    return Response(render_template("web/public/unsubscribe.html", token=token))


@bp.post("/unsubscribe/<token>")
@csrf.exempt  # RFC 8058: the mail client's POST has no cookies; the signed token is the proof
@limiter.limit(signup_limit, scope="unsubscribe-ip", deduct_when=failed)
def unsubscribe(token: str) -> Response:
    subscriber, payload, problem = subscriber_from(Purpose.UNSUBSCRIBE, token)
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
