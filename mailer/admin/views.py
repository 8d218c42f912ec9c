"""Admin pages. This issue ships the entry page; the admin UI issue fills it in."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, abort, current_app, render_template
from flask_login import current_user, login_required

from mailer.accounts.models import Role

bp = Blueprint("admin", __name__, url_prefix="/admin")


def roles_required(*roles: Role) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


STAFF = (Role.ADMIN, Role.MARKETER, Role.COMPLIANCE)


@bp.get("/")
@roles_required(*STAFF)
def dashboard() -> str:
    settings = current_app.config["MAILER"]
    return render_template("web/admin/dashboard.html", catcher=settings.smtp_catcher)
