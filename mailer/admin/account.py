"""The signed-in user's own account: changing their password (every role).

A change signs the user out of every other session (`mailer.accounts.passwords`); this browser
is signed in again with a fresh session. Wrong current passwords count towards the login
lockout, so a borrowed session cannot be used to guess the password.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    session,
    url_for,
)
from flask_login import current_user, login_user
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import EqualTo, InputRequired, Length

from mailer.accounts import lockout, passwords
from mailer.accounts.users import MIN_PASSWORD, AccountError
from mailer.admin.access import STAFF, roles_required
from mailer.extensions import db, jobs

bp = Blueprint("admin_account", __name__, url_prefix="/admin/account")


class PasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[InputRequired()])
    new_password = PasswordField(
        "New password",
        validators=[
            InputRequired(),
            Length(
                min=MIN_PASSWORD,
                max=passwords.MAX_PASSWORD,
                message=f"use at least {MIN_PASSWORD} characters "
                f"(and at most {passwords.MAX_PASSWORD})",
            ),
        ],
        description=f"At least {MIN_PASSWORD} characters; a few unrelated words make a strong one.",
    )
    confirm = PasswordField(
        "New password again",
        validators=[InputRequired(), EqualTo("new_password", message="the two do not match")],
    )


def _page(form: PasswordForm, status: int = 200) -> Response:
    return Response(render_template("web/admin/account/password.html", form=form), status=status)


@bp.get("/password")
@roles_required(*STAFF)
def password() -> Response:
    return _page(PasswordForm(formdata=None))


@bp.post("/password")
@roles_required(*STAFF)
def change_password() -> Response:
    form = PasswordForm()
    if not form.validate_on_submit():
        return _page(form, 422)
    guard = lockout.Lockout.for_settings(jobs.redis, current_app.config["MAILER"])
    email = current_user.email
    if guard.locked(email):
        form.current_password.errors = [
            "too many wrong passwords for this account: try again in a while"
        ]
        return _page(form, 422)
    try:
        user = passwords.change(
            db.session, current_user.id, form.current_password.data, form.new_password.data
        )
    except AccountError as exc:
        if exc.field == "current_password":
            guard.failed(email)
        getattr(form, exc.field).errors = [exc.message]
        return _page(form, 422)
    guard.succeeded(email)
    # Every session of this user ended with the change; this one starts afresh.
    session.clear()
    login_user(user)
    flash("Password changed. You were signed out everywhere else.", "ok")
    return redirect(url_for(".password"))
