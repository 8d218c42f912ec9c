"""What the campaign views share: loading a campaign, the step list, the page number."""

from __future__ import annotations

from flask import abort, current_app, request

from mailer.api.common import MAX_ID
from mailer.campaigns.models import Campaign
from mailer.config import Settings
from mailer.extensions import db

ID = f"int(max={MAX_ID})"

STEPS = (
    ("content", "Content"),
    ("audience", "Audience"),
    ("tracking", "Tracking"),
    ("schedule", "Schedule"),
    ("review", "Review"),
)


def campaign_or_404(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        abort(404)
    return campaign


def settings() -> Settings:
    """The settings in force: the environment's with the admin's (sender identities, tracking
    defaults, a DKIM key generated in the admin) laid over them."""
    from mailer.settings import store

    return store.effective(db.session, current_app.config["MAILER"])


def page_number() -> int:
    value = request.args.get("page", "1")
    return min(int(value), 100_000) if value.isdigit() and int(value) > 0 else 1


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"
