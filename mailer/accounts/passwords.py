"""Staff passwords: the rules for a new one, and changing your own.

Hashed by werkzeug's default (scrypt, salted), as `mailer.accounts.users` does. A change raises
the user's session version, which signs them out of every session (other browsers, a stolen
cookie); the view that made the change signs the current browser in again.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from mailer.accounts.models import User
from mailer.accounts.users import MIN_PASSWORD, AccountError

MAX_PASSWORD = 1000


def check_new(password: str, field: str = "password") -> None:
    """Raises `AccountError` on `field` unless `password` may be used."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(field, f"use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(field, f"use at most {MAX_PASSWORD} characters")
    if not password.strip():
        raise AccountError(field, "use more than spaces")


def verify(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


def change(session: Session, user_id: int, current: str, new: str) -> User:
    """Set a new password after checking the current one. Commits; every session of the user
    ends (see the module docstring). Raises `AccountError` naming the field, LookupError for
    no such user. Rerunning with the same arguments fails on `current` (it has changed)."""
    user = session.get(User, user_id)
    if user is None:
        raise LookupError(user_id)
    if not verify(user, current):
        raise AccountError("current_password", "this is not your current password")
    check_new(new, "new_password")
    if verify(user, new):
        raise AccountError("new_password", "choose a password other than your current one")
    user.password_hash = generate_password_hash(new)
    user.session_version += 1
    session.commit()
    return user
