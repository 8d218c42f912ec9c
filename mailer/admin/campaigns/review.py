"""The last step: the checklist, a test send, and the button that sends or schedules.

The checklist (`mailer.campaigns.checklist`) is computed again when the button is pressed, so
a review left open while someone changed the template cannot send what it no longer shows;
`lifecycle` then checks the content once more as it freezes it.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for

from mailer.admin.access import MARKETING, roles_required
from mailer.admin.campaigns import bp
from mailer.admin.campaigns.flow import STEPS, remembered_zone
from mailer.admin.campaigns.forms import TestSendForm, parse_addresses
from mailer.admin.campaigns.lookup import campaign_or_404, settings
from mailer.api.fields import ID
from mailer.campaigns import audience, checklist, drafts, lifecycle, planning, proofs
from mailer.campaigns.checklist import Review
from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.campaigns.sandbox import ContentError
from mailer.database import utcnow
from mailer.delivery.wire import HeaderInjection
from mailer.emails.mjml import MjmlError, MjmlUnavailable
from mailer.extensions import db
from mailer.web import htmx_fragment

CONTENT_ERRORS = (ContentError, HeaderInjection, MjmlError, MjmlUnavailable)


def _review(campaign: Campaign) -> tuple[Review, int]:
    count = audience.estimate(db.session, campaign.topic_id, campaign.segment_id)
    send_at = campaign.send_at if campaign.status is CampaignStatus.DRAFT else None
    result = checklist.review(db.session, campaign, settings(), count, send_at, utcnow())
    return result, count


@bp.get(f"/<{ID}:campaign_id>/review")
@roles_required(*MARKETING)
def review(campaign_id: int) -> Any:
    campaign = campaign_or_404(campaign_id)
    if campaign.status not in drafts.EDITABLE:
        return redirect(url_for(".show", campaign_id=campaign.id))
    result, count = _review(campaign)
    zone = remembered_zone(campaign.id)
    local_when = None
    if campaign.send_at is not None and zone != "UTC":
        local_when = f"{campaign.send_at.astimezone(planning.zone(zone)):%Y-%m-%d %H:%M} {zone}"
    return render_template(
        "web/admin/campaigns/review.html",
        campaign=campaign,
        steps=STEPS,
        step="review",
        review=result,
        count=count,
        local_when=local_when,
        test_form=TestSendForm(formdata=None),
    )


@bp.post(f"/<{ID}:campaign_id>/send")
@roles_required(*MARKETING)
def send(campaign_id: int) -> Any:
    """`mode=now` sends now; `mode=schedule` schedules at the time chosen in step 4."""
    campaign = campaign_or_404(campaign_id)
    back = redirect(url_for(".review", campaign_id=campaign.id))
    mode = request.form.get("mode", "")
    if mode not in ("now", "schedule"):
        flash("Choose “Send now” or “Schedule”.", "error")
        return back
    if campaign.status not in drafts.EDITABLE:
        flash(f"This campaign is {campaign.status.value} already.", "error")
        return redirect(url_for(".show", campaign_id=campaign.id))
    result, _count = _review(campaign)
    if not result.ready:
        for item in result.blocking:
            flash(f"{item.label}: not yet. {item.detail}".strip(), "error")
        return back
    try:
        if mode == "schedule":
            if campaign.send_at is None:
                flash("Choose a date and time in the Schedule step first.", "error")
                return back
            lifecycle.schedule(db.session, campaign.id, campaign.send_at)
            flash(f"Scheduled for {campaign.send_at:%Y-%m-%d %H:%M} UTC.", "ok")
        else:
            lifecycle.send_now(db.session, campaign.id)
            flash("Sending started.", "ok")
    except lifecycle.CampaignStateError as exc:
        flash(str(exc), "error")
    except CONTENT_ERRORS as exc:
        db.session.rollback()
        flash(f"The content cannot be sent: {exc}", "error")
        return back
    return redirect(url_for(".show", campaign_id=campaign.id))


@bp.post(f"/<{ID}:campaign_id>/test")
@roles_required(*MARKETING)
def test_send(campaign_id: int) -> Any:
    """Send the campaign as it is now to a few addresses, marked as a test (`proofs`)."""
    campaign = campaign_or_404(campaign_id)
    form = TestSendForm()
    addresses, errors = parse_addresses(form.addresses.data or "")
    results: list[dict[str, str]] = []
    if not form.validate_on_submit():
        errors = [m for ms in form.errors.values() for m in ms]
    if not errors:
        try:
            results = proofs.send_test(
                db.session,
                settings(),
                current_app.extensions["mailer.tokens"],
                campaign.id,
                addresses,
            )
        except CONTENT_ERRORS as exc:
            db.session.rollback()
            errors = [f"The content cannot be sent: {exc}"]
        except OSError as exc:  # the SMTP server could not be reached
            db.session.rollback()
            errors = [f"The mail server could not be reached: {exc}"]
    if htmx_fragment():
        return render_template(
            "web/admin/campaigns/_test_result.html", errors=errors, results=results
        )
    for message in errors:
        flash(message, "error")
    if results:
        flash(f"Test sent to {', '.join(r['address'] for r in results)}.", "ok")
    return redirect(url_for(".review", campaign_id=campaign.id))
