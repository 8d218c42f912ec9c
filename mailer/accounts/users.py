"""Creating staff users and API keys; checking passwords and keys."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from mailer.accounts.models import ApiKey, Role, User
from mailer.subscribers.schemas import normalise_email

MIN_PASSWORD = 12
# Checked against when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = generate_password_hash("not-a-real-password-" + secrets.token_hex(8))


class AccountError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def create_user(session: Session, email: str, password: str, role: Role) -> User:
    """Create (or reset the password and role of) a staff user. Commits."""
    try:
        email = normalise_email(email)
    except ValueError as exc:
        raise AccountError("email", "not a valid email address") from exc
    if len(password) < MIN_PASSWORD:
        raise AccountError("password", f"use at least {MIN_PASSWORD} characters")
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, role=role, password_hash="")
        session.add(user)
    else:
        user.session_version += 1  # a reset password signs out every session
    user.role = role
    user.password_hash = generate_password_hash(password)  # scrypt, salted
    session.commit()
    return user


def end_sessions(session: Session, user: User) -> None:
    """Sign `user` out of every session: session cookies live in browsers, so only a new
    session version (checked by the user loader) makes copies of them useless. Commits; safe
    to rerun (each run ends whatever sessions exist then)."""
    user.session_version += 1
    session.commit()


def authenticate(session: Session, email: str, password: str) -> User | None:
    try:
        email = normalise_email(email)
    except ValueError:
        email = ""
    user = session.scalar(select(User).where(User.email == email)) if email else None
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not user.active or not check_password_hash(user.password_hash, password):
        return None
    return user


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, role: Role, name: str = "") -> tuple[ApiKey, str]:
    """Returns the row and the key; the key is not stored and cannot be shown again. Commits."""
    secret = "mk_" + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=secret[:10], key_sha256=_digest(secret), role=role)
    session.add(row)
    session.commit()
    return row, secret


def find_api_key(session: Session, secret: str) -> ApiKey | None:
    row = session.scalar(select(ApiKey).where(ApiKey.key_sha256 == _digest(secret)))
    if row is None or row.revoked_at is not None:
        return None
    return row
