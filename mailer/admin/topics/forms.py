"""Sign-up forms: the list (topics, locale, confirmation rate), create and edit (a changed
consent text is a new version; every version stays readable with its SHA-256), a preview of
the hosted form at phone width and the embed snippet to copy. Values are checked with the
API's own schema (`mailer.api.forms.FormArgs`), so both doors accept the same things."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import func, select

from mailer.admin.access import MARKETING, roles_required
from mailer.admin.pagination import page_arg
from mailer.admin.topics import bp
from mailer.api.errors import flatten
from mailer.api.fields import ID
from mailer.api.forms import FormArgs
from mailer.extensions import db
from mailer.public.views import _embed_snippet  # the embed route's own text, word for word
from mailer.subscribers import form_editing
from mailer.subscribers.models import Form, Topic

PER_PAGE = 50
MAX_TOPICS = 500  # offered as checkboxes
FORM_ARGS = FormArgs()
CHECKBOXES = ("ask_name", "welcome_enabled", "welcome_gmail_tip")


@bp.get("/forms/")
@roles_required(*MARKETING)
def forms() -> str:
    page = page_arg()
    total = db.session.scalar(select(func.count()).select_from(Form)) or 0
    rows = list(
        db.session.scalars(
            select(Form).order_by(Form.id).offset((page - 1) * PER_PAGE).limit(PER_PAGE)
        )
    )
    rates = form_editing.confirmation_rates(db.session, [f.id for f in rows])
    return render_template(
        "web/admin/topics/forms.html",
        forms=rows,
        rates=rates,
        page=page,
        per_page=PER_PAGE,
        total=total,
    )


def _form_or_404(form_id: int) -> Form:
    form = db.session.get(Form, form_id)
    if form is None:
        abort(404)
    return form


def _values_of(form: Form) -> dict[str, Any]:
    return {
        "slug": form.slug,
        "name": form.name,
        "topics": [t.slug for t in form.topics],
        "locale": form.locale or "",
        "ask_name": form.ask_name,
        "welcome_enabled": form.welcome_enabled,
        "welcome_gmail_tip": form.welcome_gmail_tip,
        "allowed_origins": "\n".join(form.allowed_origins or []),
        "consent_text": form.current_version.consent_text if form.versions else "",
    }


def _posted() -> dict[str, Any]:
    """The form as typed (kept as is when it is shown again with errors)."""
    values: dict[str, Any] = {
        name: request.form.get(name, "") for name in ("slug", "name", "locale", "consent_text")
    }
    values["topics"] = request.form.getlist("topics")
    values["allowed_origins"] = request.form.get("allowed_origins", "")
    for name in CHECKBOXES:
        values[name] = name in request.form
    return values


def _args(values: dict[str, Any]) -> dict[str, Any]:
    """Checked values; raises `marshmallow.ValidationError` naming each field."""
    data = dict(values)
    data["locale"] = values["locale"] or None
    data["allowed_origins"] = [
        line.strip() for line in values["allowed_origins"].splitlines() if line.strip()
    ]
    data["consent_text"] = form_editing.normalise_text(values["consent_text"])
    return FORM_ARGS.load(data)


def _render(form: Form | None, values: dict[str, Any], status: int = 200, **extra: Any) -> Response:
    settings = current_app.config["MAILER"]
    topics = list(db.session.scalars(select(Topic).order_by(Topic.slug).limit(MAX_TOPICS)))
    context: dict[str, Any] = {
        "form": form,
        "values": values,
        "topics": topics,
        "locales": [("", "The visitor's language")] + [(x, x) for x in settings.locales],
        "errors": {},
        **extra,
    }
    if form is not None and form.versions:
        context["versions"] = list(reversed(form.versions))
        context["snippet"] = _embed_snippet(form)
        context["embed_url"] = url_for("public.embed", slug=form.slug)
        context["public_url"] = url_for("public.subscribe_form", slug=form.slug)
        context["rate"] = form_editing.confirmation_rates(db.session, [form.id])[form.id]
    return Response(render_template("web/admin/topics/form.html", **context), status=status)


@bp.get("/forms/new")
@roles_required(*MARKETING)
def new_form() -> Response:
    values = {"topics": [], "locale": "", "welcome_gmail_tip": True, "allowed_origins": ""}
    return _render(None, values)


def _save(form: Form | None) -> Response:
    values = _posted()
    try:
        args = _args(values)
        saved = form_editing.save_form(db.session, form, args)
    except ValidationError as exc:
        db.session.rollback()
        return _render(form, values, 422, errors=flatten(exc.messages))
    except form_editing.Problems as exc:
        db.session.rollback()
        return _render(form, values, 409 if "slug" in exc.errors else 422, errors=exc.errors)
    flash(f"Form {saved.slug} saved (consent text version {saved.current_version.version}).", "ok")
    return redirect(url_for(".edit_form", form_id=saved.id))


@bp.post("/forms/new")
@roles_required(*MARKETING)
def create_form() -> Response:
    return _save(None)


@bp.get(f"/forms/<{ID}:form_id>")
@roles_required(*MARKETING)
def edit_form(form_id: int) -> Response:
    form = _form_or_404(form_id)
    return _render(form, _values_of(form))


@bp.post(f"/forms/<{ID}:form_id>")
@roles_required(*MARKETING)
def update_form(form_id: int) -> Response:
    return _save(_form_or_404(form_id))
