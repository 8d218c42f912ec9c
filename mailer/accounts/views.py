"""Staff login and logout (Flask-Login), rate-limited."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from mailer.accounts import lockout, users
from mailer.accounts.models import User
from mailer.database import utcnow
from mailer.extensions import db, jobs, limiter, login_manager

bp = Blueprint("accounts", __name__)


@login_manager.user_loader
def _load_user(session_id: str) -> User | None:
    """`<id>:<session version>` (`User.get_id`): a session from before a password change or
    a deactivation carries an old version and is signed out."""
    user_id, _, version = session_id.partition(":")
    if not (user_id.isdigit() and version.isdigit()) or len(session_id) > 40:
        return None
    if int(user_id) >= 2**31:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return user


login_manager.login_view = "accounts.login"
login_manager.session_protection = "strong"


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def _safe_next(target: str | None) -> str:
    """Only local paths: no open redirect through ?next= (browsers drop tabs and newlines,
    so "/\t/evil.example" would become "//evil.example")."""
    if target:
        cleaned = "".join(ch for ch in target if ch.isprintable() and not ch.isspace())
        parts = urlsplit(cleaned)
        if (
            cleaned == target
            and cleaned.startswith("/")
            and not cleaned.startswith("//")
            and "\\" not in cleaned
            and not parts.scheme
            and not parts.netloc
        ):
            return cleaned
    return url_for("admin.dashboard")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    lambda: current_app.config["MAILER"].login_rate_limit, methods=["POST"], scope="login"
)
def login() -> Response | str:
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        guard = lockout.Lockout.for_settings(jobs.redis, current_app.config["MAILER"])
        locked = guard.locked(form.email.data)
        # Checked even when locked: a lock answers like a wrong password, in the same time.
        user = users.authenticate(db.session, form.email.data, form.password.data)
        if locked:
            user = None
        elif user is None:
            guard.failed(form.email.data)
        else:
            guard.succeeded(form.email.data)
        if user is not None:
            user.last_login_at = utcnow()
            db.session.commit()
            session.clear()  # nothing from before the login carries over (fixation)
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        error = _("Wrong email or password.")
    elif request.method == "POST":
        error = _("Enter your email and password.")
    status = 401 if error else 200
    return Response(
        render_template("web/accounts/login.html", form=form, error=error), status=status
    )


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Signing out ends every session of the user, so a copy of the cookie (taken from a
    shared computer, a proxy log) opens nothing afterwards."""
    users.end_sessions(db.session, current_user._get_current_object())
    logout_user()
    return redirect(url_for("accounts.login"))
