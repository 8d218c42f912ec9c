"""What the campaign (and template) views look up: the campaign a URL names, and the settings
in force."""

from __future__ import annotations

from flask import abort, current_app

from mailer.campaigns.models import Campaign
from mailer.config import Settings
from mailer.extensions import db


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
