"""`GET /m/<token>`: the "view in browser" copy of one campaign message. Thin: parse, render.

The token (`TrackingLinks.view_in_browser`) names the delivery; the page is that campaign's
frozen HTML rendered for the delivery's subscriber as it is now, with no tracking pixel and
links as written. An expired but genuine token still shows the page (we signed it); anything
else, or a subscriber who was erased, is the 404 page. The HTML is the marketer's, so it runs
under a strict CSP: no scripts, no forms, no framing, images and styles only.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app

from mailer.campaigns.models import Campaign, Delivery
from mailer.campaigns.rendering import PreparedCampaign, Recipient
from mailer.extensions import db
from mailer.subscribers.models import Subscriber
from mailer.tokens import Purpose, TokenError

bp = Blueprint("campaign_views", __name__)

CSP = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline' https:; "
    "font-src https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation"
)


def _delivery_id(token: str) -> int | None:
    try:
        payload: Any = current_app.extensions["mailer.tokens"].loads(Purpose.VIEW, token)
    except TokenError as exc:
        payload = exc.payload if exc.expired else None
    value = payload.get("d") if isinstance(payload, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@bp.get("/m/<token>")
def view_in_browser(token: str) -> Response:
    delivery_id = _delivery_id(token)
    delivery = db.session.get(Delivery, delivery_id) if delivery_id is not None else None
    if delivery is None or delivery.subscriber_id is None:
        abort(404)
    campaign = db.session.get(Campaign, delivery.campaign_id)
    subscriber = db.session.get(Subscriber, delivery.subscriber_id)
    if campaign is None or subscriber is None or campaign.frozen_html is None:
        abort(404)
    prepared = PreparedCampaign.from_campaign(
        campaign,
        campaign.topic,
        current_app.config["MAILER"],
        current_app.extensions["mailer.tokens"],
    )
    html = prepared.page(Recipient.from_subscriber(subscriber, delivery.id))
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Robots-Tag"] = "noindex"
    return response
