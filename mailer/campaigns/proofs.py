"""Proofs: the campaign sent now to a few colleagues, marked as a test, before the real send."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.config import Settings
from mailer.delivery.pool import SmtpConnection
from mailer.delivery.transport import SmtpTarget
from mailer.subscribers.models import Subscriber
from mailer.tokens import Tokens


def send_test(
    session: Session,
    settings: Settings,
    tokens: Tokens,
    campaign_id: int,
    addresses: list[str],
    subscriber_id: int | None = None,
) -> list[dict[str, str]]:
    """Send the campaign as it would go out now, marked as a test, to `addresses`.

    The content is frozen in memory only (rolled back): a draft stays a draft. Links in a
    test act for nobody (subscriber 0), even when personalised as a real subscriber, so a
    colleague clicking "unsubscribe" in a test does not unsubscribe that person."""
    from mailer.campaigns import rendering

    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise LookupError(campaign_id)
    profile = session.get(Subscriber, subscriber_id) if subscriber_id is not None else None
    if subscriber_id is not None and profile is None:
        raise LookupError(subscriber_id)
    try:
        if campaign.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
            rendering.freeze(session, campaign)
        prepared = rendering.PreparedCampaign.from_campaign(
            campaign, campaign.topic, settings, tokens, test=True
        )
    finally:
        session.rollback()
    results = []
    with SmtpConnection(SmtpTarget.from_url(settings.smtp_url)) as smtp:
        for address in addresses:
            recipient = rendering.Recipient(
                subscriber_id=0,
                email=address,
                name=profile.name if profile else "",
                locale=profile.locale if profile else "en",
                attributes=dict(profile.attributes or {}) if profile else {},
                tracking_enabled=False,
                delivery_id=None,
            )
            rendered = prepared.render(recipient)
            result = smtp.send(
                rendered.envelope_from, rendered.envelope_to, rendered.data, rendered.smtputf8
            )
            results.append(
                {"address": address, "outcome": result.outcome.value, "detail": result.detail}
            )
    return results
