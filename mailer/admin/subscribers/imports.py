"""CSV import pages: upload, map the columns, preview the first rows, start the job, watch its
progress (htmx polling a fragment), read the summary. Marketing staff only."""

from __future__ import annotations

import csv
from typing import Any

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from flask_wtf.csrf import validate_csrf
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import ValidationError

from mailer.accounts.models import User
from mailer.admin.access import MARKETING, roles_required
from mailer.admin.access_log import log_access
from mailer.admin.pagination import page_arg
from mailer.admin.subscribers import bp
from mailer.api.fields import ID, MAX_ID
from mailer.extensions import csrf, db
from mailer.subscribers import import_jobs, import_mapping, import_preview, import_rows
from mailer.subscribers.import_models import ImportStatus, SubscriberImport
from mailer.subscribers.models import Form, Topic

PER_PAGE = 20
SAMPLES = 3  # rows shown beside each column while mapping
PREVIEW_ROWS = 10
MAX_CHOICES = 500  # forms and topics offered in the drop-downs
# The upload's own limit (the app's is small); a little room for the multipart envelope.
UPLOAD_LIMIT = import_jobs.MAX_BYTES + 1024 * 1024
TOO_LARGE = f"the file is larger than {import_jobs.MAX_BYTES // 2**20} MB"


def _settings():
    return current_app.config["MAILER"]


def _import_or_404(import_id: int) -> SubscriberImport:
    imp = db.session.get(SubscriberImport, import_id)
    if imp is None:
        abort(404)
    return imp


def _users(ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(db.session.execute(select(User.id, User.email).where(User.id.in_(wanted))).all())


def _imports_page(status: int = 200, errors: dict[str, list[str]] | None = None) -> Response:
    page = page_arg()
    rows, total = import_jobs.recent(db.session, page, PER_PAGE)
    html = render_template(
        "web/admin/subscribers/imports.html",
        imports=rows,
        users=_users({r.created_by_id for r in rows}),
        total=total,
        page=page,
        per_page=PER_PAGE,
        errors=errors or {},
        max_mb=import_jobs.MAX_BYTES // 2**20,
    )
    return Response(html, status=status)


@bp.get("/import")
@roles_required(*MARKETING)
def imports() -> Response:
    return _imports_page()


@bp.post("/import")
@roles_required(*MARKETING)
@csrf.exempt  # checked below, once the upload's own size limit is set (the app's is 64 KB)
def upload() -> Response:
    request.max_content_length = UPLOAD_LIMIT
    # Werkzeug's multipart decoder holds up to this much of a part at a time, files included.
    request.max_form_memory_size = 1024 * 1024
    try:
        token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken")
        upload_file = request.files.get("file")
    except RequestEntityTooLarge:
        return _imports_page(413, {"file": [TOO_LARGE]})
    try:
        validate_csrf(token)
    except ValidationError:
        message = "The form has expired. Reload the page and try again."
        return _imports_page(400, {"csrf_token": [message]})
    if upload_file is None or not upload_file.filename:
        return _imports_page(422, {"file": ["choose a CSV file to upload"]})
    try:
        imp = import_jobs.receive(
            db.session,
            _settings().instance_path,
            upload_file.stream,
            upload_file.filename,
            current_user.id,
        )
    except import_jobs.UploadError as exc:
        db.session.rollback()
        return _imports_page(422, {exc.field: [exc.message]})
    except RequestEntityTooLarge:
        return _imports_page(413, {"file": [TOO_LARGE]})
    flash("File uploaded. Say what each column is, then check the preview.", "ok")
    return redirect(url_for(".import_show", import_id=imp.id))


def _mapping_rows(imp: SubscriberImport, mapping: list[str]) -> list[dict[str, Any]]:
    """Per column: its name, its first values, and what it maps to (for the form)."""
    samples: list[list[str]] = []
    path = import_jobs.path_of(_settings().instance_path, imp)
    try:
        with path.open("rb") as fh:
            samples = [cells for _, cells in import_mapping.records(fh, imp.delimiter, SAMPLES)]
    except (OSError, csv.Error, import_rows.NotText):
        samples = []
    rows = []
    for index, column in enumerate(imp.columns):
        target = mapping[index] if index < len(mapping) else ""
        is_attr = target.startswith(import_rows.ATTR)
        rows.append(
            {
                "index": index,
                "name": column,
                "samples": [c[index] for c in samples if index < len(c) and c[index].strip()],
                "target": import_mapping.ATTRIBUTE if is_attr else target,
                "attribute": target[len(import_rows.ATTR) :]
                if is_attr
                else import_mapping.attribute_key(column),
            }
        )
    return rows


def _preview(imp: SubscriberImport) -> tuple[list[import_preview.PreviewRow], str | None]:
    settings = _settings()
    options = import_preview.PreviewOptions(
        mapping=imp.mapping,
        delimiter=imp.delimiter,
        form_id=imp.form_id,
        topic=imp.topic,
        locales=settings.locales,
        truncate_ip=settings.truncate_ip,
    )
    path = import_jobs.path_of(settings.instance_path, imp)
    try:
        with path.open("rb") as fh:
            return import_preview.preview(db.session, fh, options, PREVIEW_ROWS), None
    except FileNotFoundError:
        return [], "the uploaded file is gone (unused uploads are deleted after a day)"
    except import_rows.NotText as exc:
        return [], f"line {exc.line} is not UTF-8 text"
    except csv.Error as exc:
        return [], f"the file cannot be read as CSV: {exc}"


def _status_context(imp: SubscriberImport) -> dict[str, Any]:
    columns = dict(zip(imp.mapping, imp.columns, strict=False))
    return {
        "imp": imp,
        "done": import_jobs.finished(imp),
        "restartable": imp.status is not ImportStatus.UPLOADED and import_jobs.startable(imp),
        "column_of": columns,
        "form": db.session.get(Form, imp.form_id) if imp.form_id else None,
    }


def _render_import(
    imp: SubscriberImport,
    status: int = 200,
    errors: dict[str, list[str]] | None = None,
    mapping: list[str] | None = None,
    options: dict[str, str] | None = None,
) -> Response:
    context = _status_context(imp)
    if imp.status is ImportStatus.UPLOADED:
        mapping = mapping if mapping is not None else list(imp.mapping)
        context["columns"] = _mapping_rows(imp, mapping)
        context["targets"] = import_mapping.TARGETS
        forms = db.session.scalars(select(Form).order_by(Form.slug).limit(MAX_CHOICES))
        context["form_options"] = [("", "None: every row has evidence")] + [
            (str(fo.id), f"{fo.slug} ({', '.join(t.slug for t in fo.topics)})") for fo in forms
        ]
        topics = db.session.scalars(select(Topic).order_by(Topic.slug).limit(MAX_CHOICES))
        context["topic_options"] = [("", "None")] + [
            (t.slug, f"{t.name} ({t.slug})") for t in topics
        ]
        context["options"] = options or {
            "form": str(imp.form_id or ""),
            "topic": imp.topic or "",
        }
        ready = not errors and not import_mapping.check(imp.mapping, imp.columns)
        if ready:
            context["header"] = import_mapping.header(imp.mapping)
            context["preview"], context["preview_error"] = _preview(imp)
        context["ready"] = ready
    html = render_template(
        "web/admin/subscribers/import.html",
        errors=errors or {},
        users=_users({imp.created_by_id}),
        **context,
    )
    return Response(html, status=status)


@bp.get(f"/import/<{ID}:import_id>")
@roles_required(*MARKETING)
def import_show(import_id: int) -> Response:
    return _render_import(_import_or_404(import_id))


@bp.get(f"/import/<{ID}:import_id>/progress")
@roles_required(*MARKETING)
def import_progress(import_id: int) -> str:
    """The status panel alone: htmx polls it until the import is done."""
    imp = _import_or_404(import_id)
    return render_template("web/admin/subscribers/_import_status.html", **_status_context(imp))


def _id_option(raw: str, field: str, errors: dict[str, list[str]]) -> int | None:
    if not raw:
        return None
    if raw.isascii() and raw.isdigit() and int(raw) <= MAX_ID:
        return int(raw)
    errors[field] = ["choose one from the list"]
    return None


@bp.post(f"/import/<{ID}:import_id>/mapping")
@roles_required(*MARKETING)
def import_mapping_save(import_id: int) -> Response:
    imp = _import_or_404(import_id)
    mapping = []
    for index in range(len(imp.columns)):
        target = request.form.get(f"column-{index}", "")
        if target == import_mapping.ATTRIBUTE:
            target = import_rows.ATTR + request.form.get(f"attr-{index}", "").strip()
        mapping.append(target)
    options = {"form": request.form.get("form", ""), "topic": request.form.get("topic", "")}
    errors: dict[str, list[str]] = {}
    form_id = _id_option(options["form"], "form", errors)
    topic = options["topic"] or None
    if not errors:
        errors = import_jobs.save_mapping(db.session, imp, mapping, form_id, topic)
    if errors:
        return _render_import(imp, 422, errors, mapping, options)
    flash("Mapping saved. Check the preview, then start the import.", "ok")
    return redirect(url_for(".import_show", import_id=imp.id) + "#preview")


@bp.post(f"/import/<{ID}:import_id>/start")
@roles_required(*MARKETING)
def import_start(import_id: int) -> Response:
    imp = _import_or_404(import_id)
    if not import_jobs.start(db.session, imp):
        flash("This import cannot start now: map the email column first, or it has run.", "error")
        return redirect(url_for(".import_show", import_id=imp.id))
    details = {"import": imp.id, "form": imp.form_id, "topic": imp.topic}
    log_access("subscribers.import", details={k: v for k, v in details.items() if v})
    flash("Import started.", "ok")
    return redirect(url_for(".import_show", import_id=imp.id))


@bp.post(f"/import/<{ID}:import_id>/discard")
@roles_required(*MARKETING)
def import_discard(import_id: int) -> Response:
    imp = _import_or_404(import_id)
    if import_jobs.discard(db.session, _settings().instance_path, imp):
        flash("The upload was discarded and its file deleted.", "ok")
        return redirect(url_for(".imports"))
    flash("This import has started; it cannot be discarded.", "error")
    return redirect(url_for(".import_show", import_id=imp.id))
