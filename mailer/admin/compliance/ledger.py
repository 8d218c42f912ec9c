"""The ledger panel: is the chain intact (checked by the same walk as `mailer consent verify`),
when it was last checked and by whom, the latest anchors to print, and recording one now."""

from __future__ import annotations

from flask import Response, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from mailer.admin.access import COMPLIANCE, roles_required, staff
from mailer.admin.compliance import bp
from mailer.compliance import verification
from mailer.consent import chain
from mailer.database import utcnow
from mailer.extensions import db, jobs
from mailer.web import htmx_fragment

ANCHORS_SHOWN = 10
ANCHORS_PRINTED = 50


def _status_context() -> dict:
    return {
        "last": verification.last_run(db.session),
        "running": verification.running(jobs.redis),
        "size": verification.size(db.session),
        "inline_limit": verification.INLINE_LIMIT,
    }


@bp.get("/")
@roles_required(*COMPLIANCE)
def index() -> str:
    return render_template(
        "web/admin/compliance/index.html",
        anchors=verification.anchors(db.session, ANCHORS_SHOWN),
        **_status_context(),
    )


@bp.get("/ledger/status")
@roles_required(*COMPLIANCE)
def _ledger_status() -> str:
    """The status panel alone, polled while a background walk runs."""
    return render_template("web/admin/compliance/_ledger_status.html", **_status_context())


@bp.post("/ledger/verify")
@roles_required(*COMPLIANCE)
def verify() -> Response | str:
    """Walk the chain now (small ledgers) or in a background job (large ones)."""
    if verification.size(db.session) <= verification.INLINE_LIMIT:
        # A session of its own: the walk detaches what it reads, the signed-in user included.
        with db.sessionmaker() as session:
            report = verification.run(session, staff(), "POST /admin/compliance/ledger/verify")
        message, category = (
            ("The ledger is intact.", "ok")
            if report.ok
            else (f"The ledger is broken: {report.problem}", "error")
        )
    elif verification.running(jobs.redis):
        message, category = "A check is already running.", "warning"
    elif verification.start_background(current_user.id):
        message, category = "The check runs in the background; this page shows the result.", "ok"
    else:
        message, category = "The job queue is unreachable; try again shortly.", "error"
    if htmx_fragment():
        return render_template(
            "web/admin/compliance/_ledger_status.html", note=message, **_status_context()
        )
    flash(message, category)
    return redirect(url_for("admin_compliance.index"))


@bp.post("/ledger/anchor")
@roles_required(*COMPLIANCE)
def anchor() -> Response:
    """Write the current head down with a timestamp (as `mailer consent anchor` does)."""
    row = chain.record_anchor(db.session)
    flash(f"Anchor recorded: seq {row.seq}, head {row.head_hash}.", "ok")
    return redirect(url_for("admin_compliance.index"))


@bp.get("/ledger/anchors")
@roles_required(*COMPLIANCE)
def anchors() -> str:
    """The latest anchors on one printable page, to file or send elsewhere."""
    return render_template(
        "web/admin/compliance/anchors.html",
        anchors=verification.anchors(db.session, ANCHORS_PRINTED),
        controller=current_app.config["MAILER"].controller,
        last=verification.last_run(db.session),
        now=utcnow(),
    )
