"""A campaign's report: deliveries, opens and clicks over time (people and machines apart),
clicks per link, bounces, unsubscribes and complaints; every chart with its figures as a table.

Aggregates only: no person is named on this page.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for

from mailer.admin import charts
from mailer.admin.access import MARKETING, roles_required
from mailer.admin.campaigns import bp
from mailer.admin.campaigns.lookup import campaign_or_404
from mailer.api.fields import ID
from mailer.campaigns import reports, timeline, unsubscribes
from mailer.campaigns.models import CampaignStatus
from mailer.extensions import db

LINK_LABEL = 48
MIN_LINE_POINTS = 8


def _short(url: str | None) -> str:
    url = url or ""
    bare = url.split("://", 1)[-1]
    return bare if len(bare) <= LINK_LABEL else bare[: LINK_LABEL - 1] + "…"


def _charts(engagement: timeline.Timeline, links: list[dict[str, Any]]) -> dict[str, Any]:
    labels = engagement.labels
    counts = engagement.counts
    opens = [
        charts.Series("Human opens", counts["human_opens"]),
        charts.Series("Machine opens", counts["machine_opens"]),
    ]
    clicks = [
        charts.Series("Human clicks", counts["human_clicks"]),
        charts.Series("Machine clicks", counts["machine_clicks"]),
    ]
    per = "hour" if engagement.unit == "hour" else "day"
    # A line needs a few points; a handful of hours read better as bars.
    draw = charts.line_chart if len(labels) >= MIN_LINE_POINTS else charts.bar_chart
    link_labels = [f"#{link['index'] + 1}" for link in links]
    link_series = [
        charts.Series("Clicks", [link["clicks"] for link in links]),
        charts.Series("Unique clicks", [link["unique_clicks"] for link in links]),
    ]
    return {
        "opens": draw(f"Opens per {per} (UTC)", labels, opens),
        "opens_legend": charts.legend(opens),
        "opens_table": charts.table(f"Opens per {per}", labels, opens),
        "clicks": draw(f"Clicks per {per} (UTC)", labels, clicks),
        "clicks_legend": charts.legend(clicks),
        "clicks_table": charts.table(f"Clicks per {per}", labels, clicks),
        "links": charts.bar_chart("Human clicks per link", link_labels, link_series)
        if links
        else None,
        "links_legend": charts.legend(link_series),
    }


@bp.get(f"/<{ID}:campaign_id>/report")
@roles_required(*MARKETING)
def report(campaign_id: int) -> Any:
    campaign = campaign_or_404(campaign_id)
    if campaign.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        flash("The report starts when the campaign is sent.", "warning")
        return redirect(url_for(".show", campaign_id=campaign.id))
    figures = reports.report(db.session, campaign)
    engagement = timeline.engagement(db.session, campaign.id, campaign.started_at)
    links = [{**link, "label": _short(link["url"])} for link in figures["links"]]
    return render_template(
        "web/admin/campaigns/report.html",
        campaign=campaign,
        figures=figures,
        unsubscribed=unsubscribes.attributed(db.session, campaign),
        engagement=engagement,
        links=links,
        chart=_charts(engagement, figures["links"]),
    )
