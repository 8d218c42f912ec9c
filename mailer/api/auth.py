"""Bearer API keys with a role. Admin keys may do everything; others what the route names."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from mailer.accounts.models import ApiKey, Role
from mailer.accounts.users import find_api_key
from mailer.api.errors import ApiError
from mailer.database import utcnow
from mailer.extensions import db

F = TypeVar("F", bound=Callable[..., Any])

# last_used_at is written at most this often per key: no write on every request.
_TOUCH_SECONDS = 60


def current_key() -> ApiKey:
    return g.api_key


def require(*roles: Role) -> Callable[[F], F]:
    """401 without a valid key, 403 when the key's role is not among `roles` (or admin)."""
    allowed = {Role.ADMIN, *roles}

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, secret = header.partition(" ")
            key = find_api_key(db.session, secret.strip()) if scheme.lower() == "bearer" else None
            if key is None:
                raise ApiError(
                    401,
                    {"authorization": ["a valid API key is required"]},
                    {"WWW-Authenticate": 'Bearer realm="mailer"'},
                )
            if key.role not in allowed:
                names = ", ".join(sorted(r.value for r in allowed))
                raise ApiError(403, {"authorization": [f"this key's role may not; needs {names}"]})
            now = utcnow()
            if (
                key.last_used_at is None
                or (now - key.last_used_at).total_seconds() > _TOUCH_SECONDS
            ):
                key.last_used_at = now
                db.session.commit()
            g.api_key = key
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
