"""Consent audit exports from the admin pages: ask with a filter, watch the background job's
progress, download the file until it expires. Each request and each download is on the staff
audit log."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import (
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, RadioField, SelectField, SelectMultipleField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional
from wtforms.widgets import CheckboxInput, ListWidget

from mailer.admin.access import COMPLIANCE, roles_required
from mailer.admin.access_log import log_access
from mailer.admin.compliance import bp
from mailer.api.fields import ID
from mailer.compliance import audit_export, export_jobs
from mailer.compliance.models import ExportJob, ExportStatus
from mailer.consent.models import ConsentEventType
from mailer.extensions import db
from mailer.subscribers.models import Form, Topic
from mailer.web import error_response

PER_PAGE = 20
MAX_CHOICES = 500  # topics and forms offered in the filter menus
MIN_YEAR, MAX_YEAR = 1970, 9000  # dates outside are typos (and 9999-12-31 + 1 day overflows)
MAX_PAGE = 1_000_000


class ExportForm(FlaskForm):
    since = DateField("From (UTC date)", validators=[Optional()])
    until = DateField("Until (UTC date, inclusive)", validators=[Optional()])
    types = SelectMultipleField(
        "Event types",
        choices=[SelectChoice(t.value) for t in ConsentEventType],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validators=[Optional()],
    )
    topic = SelectField("Topic", validators=[Optional()])
    form_id = SelectField("Form", validators=[Optional()])
    format = RadioField(
        "Format",
        choices=[SelectChoice("csv", "CSV"), SelectChoice("jsonl", "JSON Lines")],
        default="csv",
    )

    def fill_choices(self) -> None:
        topics = db.session.scalars(select(Topic.slug).order_by(Topic.slug).limit(MAX_CHOICES))
        self.topic.choices = [("", "Any topic"), *((slug, slug) for slug in topics)]
        forms = db.session.execute(
            select(Form.id, Form.slug).order_by(Form.slug).limit(MAX_CHOICES)
        )
        self.form_id.choices = [("", "Any form"), *((str(i), slug) for i, slug in forms)]

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for field in (self.since, self.until):
            if field.data and not MIN_YEAR <= field.data.year <= MAX_YEAR:
                field.errors.append(f"choose a year between {MIN_YEAR} and {MAX_YEAR}")
                ok = False
        if ok and self.since.data and self.until.data and self.until.data < self.since.data:
            self.until.errors.append("must be on or after the From date")
            ok = False
        return ok

    def audit_filter(self) -> audit_export.Filter:
        since, until = self.since.data, self.until.data
        return audit_export.Filter(
            since=datetime.combine(since, time(), UTC) if since else None,
            # Inclusive in the form, exclusive in the filter: the whole last day.
            until=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
            types=tuple(ConsentEventType(t) for t in self.types.data or ()),
            topic=self.topic.data or None,
            form_id=int(self.form_id.data) if self.form_id.data else None,
        )


def _list(form: ExportForm, status: int = 200) -> tuple[str, int]:
    page = min(max(1, request.args.get("page", 1, type=int) or 1), MAX_PAGE)
    rows, total = export_jobs.page(db.session, page, PER_PAGE)
    html = render_template(
        "web/admin/compliance/exports.html",
        form=form,
        exports=rows,
        page=page,
        per_page=PER_PAGE,
        total=total,
        now=datetime.now(UTC),
    )
    return html, status


@bp.get("/exports")
@roles_required(*COMPLIANCE)
def exports() -> tuple[str, int]:
    form = ExportForm(formdata=None)
    form.fill_choices()
    return _list(form)


@bp.post("/exports")
@roles_required(*COMPLIANCE)
def request_export() -> Response | tuple[str, int]:
    form = ExportForm()
    form.fill_choices()
    if not form.validate():
        return _list(form, 422)
    flt = form.audit_filter()
    settings = current_app.config["MAILER"]
    export = export_jobs.request(
        db.session,
        flt,
        form.format.data,
        user_id=current_user.id,
        requested_by=current_user.email,
        ttl_hours=settings.export_ttl_hours,
    )
    log_access(
        "consent.export.request",
        details={
            "export_id": export.id,
            "format": export.format,
            **export_jobs.filters_of(flt),
        },
    )
    return redirect(url_for("admin_compliance.export", export_id=export.id))


def _export_or_404(export_id: int) -> ExportJob:
    export = db.session.get(ExportJob, export_id)
    if export is None:
        abort(404)
    return export


def _context(export: ExportJob) -> dict:
    return {
        "export": export,
        "form_slug": (
            db.session.scalar(select(Form.slug).where(Form.id == export.filters.get("form_id")))
            if export.filters.get("form_id")
            else None
        ),
        "now": datetime.now(UTC),
        "finished": export.status not in export_jobs.UNFINISHED,
        "expired": export.status is ExportStatus.EXPIRED
        or (export.expires_at is not None and export.expires_at <= datetime.now(UTC)),
    }


@bp.get(f"/exports/<{ID}:export_id>")
@roles_required(*COMPLIANCE)
def export(export_id: int) -> str:
    return render_template(
        "web/admin/compliance/export.html", **_context(_export_or_404(export_id))
    )


@bp.get(f"/exports/<{ID}:export_id>/progress")
@roles_required(*COMPLIANCE)
def _export_progress(export_id: int) -> str:
    """The progress panel alone, polled by the export page until the job has finished."""
    return render_template(
        "web/admin/compliance/_export_progress.html", **_context(_export_or_404(export_id))
    )


@bp.get(f"/exports/<{ID}:export_id>/download")
@roles_required(*COMPLIANCE)
def download(export_id: int) -> Response:
    export = _export_or_404(export_id)
    folder = export_jobs.folder(current_app.config["MAILER"].instance_path)
    found = export_jobs.download(export, folder)
    if found is None:
        if export.status in (ExportStatus.DONE, ExportStatus.EXPIRED):
            abort(error_response(410, {"export": ["This file has expired; request a new export."]}))
        abort(error_response(404, {"export": ["This export has no file (yet)."]}))
    log_access(
        "consent.export.download",
        details={
            "export_id": export.id,
            "format": export.format,
            "rows": export.rows_done,
            **export.filters,
        },
    )
    response = send_file(
        found.path,
        mimetype=found.mimetype,
        as_attachment=True,
        download_name=found.download_name,
        max_age=0,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
