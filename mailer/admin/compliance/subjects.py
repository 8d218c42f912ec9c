"""Data subjects' requests: find a person by address, show the proof of their consent and a
printable consent receipt, download the access/portability export (Art. 15, 20), and erase
(Art. 17) after typing the address again. Every view, download and erasure is on the staff
audit log before anything is shown or done."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from mailer.admin.access import COMPLIANCE, roles_required
from mailer.admin.compliance import bp
from mailer.admin.compliance.common import address_of, log
from mailer.compliance import access, access_zip, erasure, proof
from mailer.consent.models import ConsentSource
from mailer.extensions import db

FORMATS = ("json", "zip")


def _need_address() -> Response:
    flash("Enter the address of the person first.", "error")
    return redirect(url_for("admin_compliance.subjects"))


@bp.get("/subjects")
@roles_required(*COMPLIANCE)
def subjects() -> tuple[str, int]:
    """Find a person; with an address, show every consent event and the texts shown."""
    raw = request.args.get("email", "")
    address, errors = address_of(raw)
    found = None
    if address:
        log("subject.consent", address)
        found = proof.proof(db.session, address, current_app.config["MAILER"].controller)
    status = 422 if errors else (404 if address and found is None else 200)
    html = render_template(
        "web/admin/compliance/subjects.html",
        raw=raw,
        address=address,
        errors=errors,
        proof=found,
    )
    return html, status


@bp.get("/subjects/receipt")
@roles_required(*COMPLIANCE)
def receipt() -> Response | tuple[str, int]:
    """The consent receipt (Kantara Consent Receipt v1.1 fields) as a printable page."""
    address, _errors = address_of(request.args.get("email"))
    if address is None:
        return _need_address()
    log("subject.receipt", address)
    found = proof.proof(db.session, address, current_app.config["MAILER"].controller)
    html = render_template(
        "web/admin/compliance/receipt.html",
        address=address,
        proof=found,
        receipt=found.receipt if found else None,
        given_at=datetime.fromtimestamp(found.receipt["consentTimestamp"], UTC)
        if found and found.receipt
        else None,
        receipt_json=json.dumps(found.receipt, indent=2, ensure_ascii=False)
        if found and found.receipt
        else "",
    )
    return html, 200 if found and found.receipt else 404


@bp.get("/subjects/export")
@roles_required(*COMPLIANCE)
def subject_export() -> Response | tuple[str, int]:
    """The access/portability export: one JSON document, or a ZIP with a CSV per section."""
    address, _errors = address_of(request.args.get("email"))
    if address is None:
        return _need_address()
    fmt = request.args.get("format", "zip")
    if fmt not in FORMATS:
        fmt = "zip"
    log("subject.export", address, details={"format": fmt})
    try:
        document = access.export(db.session, address)
    except access.NothingHeld:
        flash("Nothing is held about this address.", "error")
        return redirect(url_for("admin_compliance.subjects", email=address))
    if fmt == "json":
        body = json.dumps(document, indent=2, ensure_ascii=False)
        mimetype = "application/json"
    else:
        body = access_zip.archive(document)
        mimetype = "application/zip"
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="subject-export.{fmt}"'},
    )


@bp.get("/subjects/erase")
@roles_required(*COMPLIANCE)
def erase_confirm() -> Response | str:
    """The confirmation step: what goes, what stays, and the address to type again."""
    address, _errors = address_of(request.args.get("email"))
    if address is None:
        return _need_address()
    return render_template(
        "web/admin/compliance/erase.html", address=address, errors={}, confirm=""
    )


@bp.post("/subjects/erase")
@roles_required(*COMPLIANCE)
def erase() -> Response | tuple[str, int]:
    """Erase through the one audited path (`mailer.compliance.erasure.erase`)."""
    address, errors = address_of(request.form.get("email"))
    confirm = request.form.get("confirm", "")
    if address is None:
        errors = errors or {"email": ["enter the address to erase"]}
    else:
        typed, _ = address_of(confirm)
        if typed != address:
            errors = {"confirm": ["type the same address again to erase it"]}
    if errors:
        html = render_template(
            "web/admin/compliance/erase.html",
            address=address or request.form.get("email", "")[:320],
            errors=errors,
            confirm=confirm[:320],
        )
        return html, 422
    log("subject.erase", address)
    actor = f"user:{current_user.id} {current_user.email}"[:320]
    try:
        result = erasure.erase(db.session, address, actor, ConsentSource.ADMIN)
    except erasure.NothingToErase:
        html = render_template(
            "web/admin/compliance/erase.html",
            address=address,
            errors={"email": ["nothing is held about this address (never seen, or erased)"]},
            confirm="",
        )
        return html, 404
    flash(
        f"Erased. {result.events_pseudonymised} consent events pseudonymised; withdrawn: "
        f"{', '.join(result.withdrawn) or 'nothing active'}. The erasure is ledger event "
        f"{result.erased_event_id}.",
        "ok",
    )
    return redirect(url_for("admin_compliance.subjects", email=address))
