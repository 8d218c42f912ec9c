"""The landing page after sign-in: how the list grows, how each form converts, how the latest
campaigns did, and today's headline figures.

The figures come from `mailer.subscribers.growth` (the consent ledger: see there why) and
`mailer.campaigns.latest`; this view only picks the period and draws them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request

from mailer.admin import charts
from mailer.admin.access import STAFF, roles_required
from mailer.campaigns import latest
from mailer.database import utcnow
from mailer.extensions import db
from mailer.subscribers import growth
from mailer.web import error_response

bp = Blueprint("admin", __name__, url_prefix="/admin")

RECENT_CAMPAIGNS = 5


@bp.get("/")
@roles_required(*STAFF)
def dashboard() -> Any:
    raw = request.args.get("days", str(growth.PERIODS[0]))
    if not raw.isdigit() or int(raw) not in growth.PERIODS:
        choices = " or ".join(str(p) for p in growth.PERIODS)
        return error_response(400, {"days": [f"Show the last {choices} days."]})
    settings = current_app.config["MAILER"]
    span = growth.period(utcnow(), int(raw))
    daily = growth.daily(db.session, span)
    series = [
        charts.Series("New", daily.new),
        charts.Series("Confirmed", daily.confirmed),
        charts.Series("Unsubscribed", daily.unsubscribed),
    ]
    labels = [day.strftime("%d %b") for day in daily.days]
    title = f"Subscribers per day, last {span.days} days"
    return render_template(
        "web/admin/dashboard.html",
        catcher=settings.smtp_catcher,
        span=span,
        periods=growth.PERIODS,
        chart=charts.line_chart(title, labels, series),
        legend=charts.legend(series),
        figures=charts.table(title, [d.isoformat() for d in daily.days], series),
        totals={s.name: sum(s.values) for s in series},
        rates=growth.form_rates(db.session, span),
        headline=growth.headline(db.session),
        campaigns=latest.recent(db.session, RECENT_CAMPAIGNS),
    )
