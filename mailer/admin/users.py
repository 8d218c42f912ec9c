"""Users and API keys (admins only): list, add, change role, deactivate and reactivate
users; create and revoke API keys.

A generated password and a new API key are shown once, in the answer to the POST that made
them (never put in a flash message, which would travel in the session cookie), under
`Cache-Control: no-store`; neither is kept anywhere. Rules live in `mailer.accounts.roster`
and `mailer.accounts.api_keys`.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from mailer.accounts import api_keys, roster
from mailer.accounts.models import Role, User
from mailer.accounts.passwords import MAX_PASSWORD
from mailer.accounts.users import MIN_PASSWORD, AccountError
from mailer.admin.access import ADMIN, roles_required
from mailer.api.fields import MAX_ID
from mailer.extensions import db

bp = Blueprint("admin_users", __name__, url_prefix="/admin/users")

ID = f"int(max={MAX_ID})"
PER_PAGE = 50
ROLE_CHOICES = [
    SelectChoice(Role.MARKETER.value, "Marketer: topics, forms, subscribers, templates, campaigns"),
    SelectChoice(Role.COMPLIANCE.value, "Compliance: read-only subscribers, consent, erasure"),
    SelectChoice(Role.ADMIN.value, "Admin: everything, including settings, users and API keys"),
]


class UserForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(), Length(max=320)])
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[InputRequired()])
    password = PasswordField(
        "Initial password",
        validators=[
            Optional(),
            Length(
                min=MIN_PASSWORD,
                max=MAX_PASSWORD,
                message=f"use at least {MIN_PASSWORD} characters (and at most {MAX_PASSWORD})",
            ),
        ],
        description=f"At least {MIN_PASSWORD} characters. Leave it empty to have one "
        "generated (shown once).",
    )


class KeyForm(FlaskForm):
    name = StringField("Name", validators=[InputRequired(), Length(max=200)])
    role = SelectField("Role", choices=ROLE_CHOICES, validators=[InputRequired()])


def _number(name: str = "page") -> int:
    raw = request.args.get(name, "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1


def _users_page(form: UserForm, status: int = 200, created: tuple | None = None) -> Response:
    role_arg = request.args.get("role", "")
    role = Role(role_arg) if role_arg in {r.value for r in Role} else None
    number = _number()
    rows, total = roster.page(db.session, number, PER_PAGE, role)
    html = render_template(
        "web/admin/users/index.html",
        form=form,
        users=rows,
        total=total,
        page=number,
        per_page=PER_PAGE,
        role=role,
        roles=list(Role),
        created=created,
        me=current_user.id,
    )
    return Response(html, status=status)


def _account_error(form: FlaskForm, exc: AccountError) -> None:
    field = getattr(form, exc.field, None)
    if field is not None:
        field.errors = [*field.errors, exc.message]
    else:
        form.form_errors.append(exc.message)


@bp.get("/")
@roles_required(*ADMIN)
def index() -> Response:
    return _users_page(UserForm(formdata=None))


@bp.post("/")
@roles_required(*ADMIN)
def create() -> Response:
    form = UserForm()
    if not form.validate_on_submit():
        return _users_page(form, 422)
    try:
        user, generated = roster.add(
            db.session, form.email.data, Role(form.role.data), form.password.data or None
        )
    except AccountError as exc:
        _account_error(form, exc)
        return _users_page(form, 422)
    return _users_page(UserForm(formdata=None), 201, created=(user, generated))


def _back(user_id: int | None = None) -> Response:
    return redirect(url_for(".index") + (f"#user-{user_id}" if user_id else ""))


@bp.post(f"/<{ID}:user_id>/role")
@roles_required(*ADMIN)
def change_role(user_id: int) -> Response:
    if db.session.get(User, user_id) is None:
        abort(404)
    raw = request.form.get("role", "")
    if raw not in {r.value for r in Role}:
        flash("Choose a role: admin, marketer or compliance.", "error")
        return _back(user_id)
    try:
        user = roster.change_role(db.session, current_user.id, user_id, Role(raw))
    except LookupError:
        abort(404)
    except AccountError as exc:
        flash(exc.message, "error")
        return _back(user_id)
    flash(f"{user.email} is now {user.role.value}.", "ok")
    return _back(user_id)


def _set_active(user_id: int, active: bool) -> Response:
    try:
        user = roster.set_active(db.session, current_user.id, user_id, active)
    except LookupError:
        abort(404)
    except AccountError as exc:
        flash(exc.message, "error")
        return _back(user_id)
    if active:
        flash(f"{user.email} can sign in again.", "ok")
    else:
        flash(f"{user.email} is deactivated and signed out everywhere.", "ok")
    return _back(user_id)


@bp.post(f"/<{ID}:user_id>/deactivate")
@roles_required(*ADMIN)
def deactivate(user_id: int) -> Response:
    return _set_active(user_id, False)


@bp.post(f"/<{ID}:user_id>/reactivate")
@roles_required(*ADMIN)
def reactivate(user_id: int) -> Response:
    return _set_active(user_id, True)


# -- API keys -------------------------------------------------------------------------------


def _keys_page(form: KeyForm, status: int = 200, created: tuple | None = None) -> Response:
    number = _number()
    rows, total = api_keys.page(db.session, number, PER_PAGE)
    html = render_template(
        "web/admin/users/keys.html",
        form=form,
        keys=rows,
        total=total,
        page=number,
        per_page=PER_PAGE,
        created=created,
    )
    return Response(html, status=status)


@bp.get("/api-keys")
@roles_required(*ADMIN)
def keys() -> Response:
    return _keys_page(KeyForm(formdata=None))


@bp.post("/api-keys")
@roles_required(*ADMIN)
def create_key() -> Response:
    form = KeyForm()
    if not form.validate_on_submit():
        return _keys_page(form, 422)
    try:
        row, secret = api_keys.create(db.session, form.name.data, Role(form.role.data))
    except AccountError as exc:
        _account_error(form, exc)
        return _keys_page(form, 422)
    return _keys_page(KeyForm(formdata=None), 201, created=(row, secret))


@bp.post(f"/api-keys/<{ID}:key_id>/revoke")
@roles_required(*ADMIN)
def revoke_key(key_id: int) -> Response:
    try:
        row = api_keys.revoke(db.session, key_id)
    except LookupError:
        abort(404)
    flash(f"API key “{row.name}” ({row.prefix}…) revoked: it no longer works.", "ok")
    return redirect(url_for(".keys"))
