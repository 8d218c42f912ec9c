"""Who may open an admin page, and who did (for the staff audit log)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, request
from flask_login import current_user, login_required

from mailer.accounts.models import Role
from mailer.compliance.staff_log import Staff

STAFF = (Role.ADMIN, Role.MARKETER, Role.COMPLIANCE)
MARKETING = (Role.ADMIN, Role.MARKETER)
COMPLIANCE = (Role.ADMIN, Role.COMPLIANCE)
ADMIN = (Role.ADMIN,)


def roles_required(*roles: Role) -> Callable:
    """Signed-in staff with one of `roles`; anonymous visitors go to the login page, other
    roles get a 403. The roles are kept on the view (`admin_roles`) for the access matrix."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        wrapped.admin_roles = frozenset(roles)  # type: ignore[attr-defined]
        return wrapped

    return decorator


def can(*roles: Role) -> bool:
    """For templates: show a link or button only to those who may use it."""
    return current_user.is_authenticated and current_user.role in roles


def staff() -> Staff:
    """The signed-in user as the staff audit log records them."""
    return Staff(user_id=current_user.id, ip=request.remote_addr)
