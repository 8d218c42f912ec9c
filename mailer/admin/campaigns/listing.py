"""The campaign list: status, audience, sent, human open and click rates, paged."""

from __future__ import annotations

from flask import render_template, request

from mailer.admin.access import MARKETING, roles_required
from mailer.admin.campaigns import bp
from mailer.admin.pagination import page_arg
from mailer.campaigns import overview
from mailer.campaigns.models import CampaignStatus
from mailer.extensions import db

PER_PAGE = 25


@bp.get("/")
@roles_required(*MARKETING)
def index() -> str:
    wanted = request.args.get("status", "")
    status = next((s for s in CampaignStatus if s.value == wanted), None)
    page = page_arg()
    rows, total = overview.campaigns_page(db.session, page, PER_PAGE, status)
    return render_template(
        "web/admin/campaigns/index.html",
        rows=rows,
        total=total,
        page=page,
        per_page=PER_PAGE,
        status=status,
        statuses=list(CampaignStatus),
    )
