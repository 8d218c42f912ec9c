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
from flask_login import login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from mailer.accounts import users
from mailer.accounts.models import User
from mailer.database import utcnow
from mailer.extensions import db, limiter, login_manager

bp = Blueprint("accounts", __name__)


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


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
        user = users.authenticate(db.session, form.email.data, form.password.data)
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
    logout_user()
    return redirect(url_for("accounts.login"))
