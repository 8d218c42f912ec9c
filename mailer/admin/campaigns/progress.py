"""A campaign's page once it is scheduled or sending: live progress, pause, resume, cancel.

The progress panel polls its own URL every 2 seconds (htmx) while the campaign can still
change, and stops once it has finished or was cancelled: the last answer carries no trigger.
The buttons act through `lifecycle`, whose guarded transitions make a double click or two
people at once harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, render_template, url_for

from mailer.admin.access import MARKETING, roles_required
from mailer.admin.campaigns import bp
from mailer.admin.campaigns.lookup import campaign_or_404
from mailer.api.fields import ID
from mailer.campaigns import lifecycle, reports
from mailer.campaigns.models import Campaign, CampaignStatus
from mailer.extensions import db

S = CampaignStatus
LIVE = (S.SCHEDULED, S.SENDING, S.PAUSED)


@dataclass(frozen=True)
class Progress:
    campaign: Campaign
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return self.counts["total"] or self.campaign.recipient_count

    @property
    def done(self) -> int:
        c = self.counts
        return c["sent"] + c["failed"] + c["skipped"] + c["unknown"]

    @property
    def waiting(self) -> int:
        return self.counts["pending"] + self.counts["sending"]

    @property
    def live(self) -> bool:
        return self.campaign.status in LIVE

    @property
    def finished(self) -> bool:
        return self.campaign.status is S.SENT

    @property
    def resolving(self) -> bool:
        return self.campaign.status is S.SENDING and self.campaign.resolved_at is None


def _progress(campaign: Campaign) -> Progress:
    return Progress(campaign, reports.counts(db.session, campaign.id))


@bp.get(f"/<{ID}:campaign_id>")
@roles_required(*MARKETING)
def show(campaign_id: int) -> Any:
    campaign = campaign_or_404(campaign_id)
    if campaign.status is S.DRAFT:
        return redirect(url_for(".review", campaign_id=campaign.id))
    return render_template(
        "web/admin/campaigns/show.html", campaign=campaign, progress=_progress(campaign)
    )


@bp.get(f"/<{ID}:campaign_id>/progress")
@roles_required(*MARKETING)
def progress(campaign_id: int) -> str:
    """htmx: the progress panel as it is now."""
    campaign = campaign_or_404(campaign_id)
    return render_template("web/admin/campaigns/_progress.html", progress=_progress(campaign))


def _act(campaign_id: int, action: Any, done: str) -> Any:
    campaign_or_404(campaign_id)
    try:
        action(db.session, campaign_id)
    except lifecycle.CampaignStateError as exc:
        flash(str(exc).capitalize(), "error")
    else:
        flash(done, "ok")
    return redirect(url_for(".show", campaign_id=campaign_id))


@bp.post(f"/<{ID}:campaign_id>/pause")
@roles_required(*MARKETING)
def pause(campaign_id: int) -> Any:
    return _act(campaign_id, lifecycle.pause, "Paused: senders stop within seconds.")


@bp.post(f"/<{ID}:campaign_id>/resume")
@roles_required(*MARKETING)
def resume(campaign_id: int) -> Any:
    return _act(campaign_id, lifecycle.resume, "Resumed.")


@bp.post(f"/<{ID}:campaign_id>/cancel")
@roles_required(*MARKETING)
def cancel(campaign_id: int) -> Any:
    return _act(campaign_id, lifecycle.cancel, "Cancelled: recipients not yet sent to are skipped.")
