"""Campaign pages: the list, the guided flow (content, audience, tracking, schedule, review),
the campaign page with live progress and its controls, and the report.

One blueprint over a few modules, each one part of the journey; the rules live in the domain
(`mailer.campaigns`: drafts, lifecycle, proofs, audience, planning, checklist, reports,
timeline), the views parse, call and render.
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin_campaigns", __name__, url_prefix="/admin/campaigns")

from mailer.admin.campaigns import flow, listing, progress, report, review  # noqa: E402,F401
