"""The landing page after sign-in."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from mailer.admin.access import STAFF, roles_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
@roles_required(*STAFF)
def dashboard() -> str:
    settings = current_app.config["MAILER"]
    return render_template("web/admin/dashboard.html", catcher=settings.smtp_catcher)
