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
from mailer.admin.access_log import log_access
from mailer.admin.compliance import bp
from mailer.admin.compliance.subject_refs import address_from_ref, address_of, subject_ref
from mailer.compliance import access, access_zip, erasure, proof
from mailer.consent.models import ConsentSource
from mailer.extensions import db

FORMATS = ("json", "zip")


def _need_address() -> Response:
    flash("That link has expired or is not valid: look the person up again.", "error")
    return redirect(url_for("admin_compliance.subjects"))


def _to_subject(address: str, endpoint: str = "admin_compliance.subject") -> Response:
    return redirect(url_for(endpoint, ref=subject_ref(address)), code=303)


def _search(raw: str, errors: dict[str, list[str]], status: int) -> tuple[str, int]:
    html = render_template(
        "web/admin/compliance/subjects.html", raw=raw[:320], address=None, errors=errors
    )
    return html, status


@bp.get("/subjects")
@roles_required(*COMPLIANCE)
def subjects() -> Response | tuple[str, int]:
    """The search form. An address in the query string (an old link or bookmark) is moved
    out of the URL at once."""
    raw = request.args.get("email")
    if raw is None:
        return _search("", {}, 200)
    address, errors = address_of(raw)
    if address is None:
        return _search(raw, errors or {"email": ["enter the address of the person"]}, 422)
    return _to_subject(address)


@bp.post("/subjects")
@roles_required(*COMPLIANCE)
def find() -> Response | tuple[str, int]:
    """Find a person: the address travels in the form's body, then in a sealed reference."""
    raw = request.form.get("email", "")
    address, errors = address_of(raw)
    if address is None:
        return _search(raw, errors or {"email": ["enter the address of the person"]}, 422)
    return _to_subject(address)


@bp.get("/subjects/<ref>")
@roles_required(*COMPLIANCE)
def subject(ref: str) -> Response | tuple[str, int]:
    """Every consent event of the person and the texts shown."""
    address = address_from_ref(ref)
    if address is None:
        return _need_address()
    log_access("subject.consent", address)
    found = proof.proof(db.session, address, current_app.config["MAILER"].controller)
    html = render_template(
        "web/admin/compliance/subjects.html",
        raw=address,
        address=address,
        ref=ref,
        errors={},
        proof=found,
    )
    return html, 200 if found else 404


@bp.get("/subjects/<ref>/receipt")
@roles_required(*COMPLIANCE)
def receipt(ref: str) -> Response | tuple[str, int]:
    """The consent receipt (Kantara Consent Receipt v1.1 fields) as a printable page."""
    address = address_from_ref(ref)
    if address is None:
        return _need_address()
    log_access("subject.receipt", address)
    found = proof.proof(db.session, address, current_app.config["MAILER"].controller)
    html = render_template(
        "web/admin/compliance/receipt.html",
        address=address,
        ref=ref,
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


@bp.get("/subjects/<ref>/export")
@roles_required(*COMPLIANCE)
def subject_export(ref: str) -> Response:
    """The access/portability export: one JSON document, or a ZIP with a CSV per section."""
    address = address_from_ref(ref)
    if address is None:
        return _need_address()
    fmt = request.args.get("format", "zip")
    if fmt not in FORMATS:
        fmt = "zip"
    log_access("subject.export", address, details={"format": fmt})
    try:
        document = access.export(db.session, address)
    except access.NothingHeld:
        flash("Nothing is held about this address.", "error")
        return redirect(url_for("admin_compliance.subject", ref=ref))
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


@bp.get("/subjects/<ref>/erase")
@roles_required(*COMPLIANCE)
def erase_confirm(ref: str) -> Response | str:
    """The confirmation step: what goes, what stays, and the address to type again."""
    address = address_from_ref(ref)
    if address is None:
        return _need_address()
    return render_template(
        "web/admin/compliance/erase.html", address=address, ref=ref, errors={}, confirm=""
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
            ref=subject_ref(address) if address else None,
            errors=errors,
            confirm=confirm[:320],
        )
        return html, 422
    log_access("subject.erase", address)
    actor = f"user:{current_user.id} {current_user.email}"[:320]
    try:
        result = erasure.erase(db.session, address, actor, ConsentSource.ADMIN)
    except erasure.NothingToErase:
        html = render_template(
            "web/admin/compliance/erase.html",
            address=address,
            ref=subject_ref(address),
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
    return _to_subject(address)
