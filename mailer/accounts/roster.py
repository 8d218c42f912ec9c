"""Staff users as an admin manages them: list, add, change role, deactivate and reactivate.

Two rules keep the deployment manageable: an admin cannot demote or deactivate themself, and
the last active admin cannot be demoted or deactivated (checked with the active admins locked
on PostgreSQL, so two admins demoting each other at once cannot both succeed; SQLite runs one
writer at a time). Users are never deleted: their id stays meaningful in the audit logs.
"""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from mailer.accounts.models import Role, User
from mailer.accounts.passwords import check_new
from mailer.accounts.users import AccountError
from mailer.subscribers.schemas import normalise_email


def page(
    session: Session, page_number: int, per_page: int, role: Role | None = None
) -> tuple[list[User], int]:
    """One page of users by email, and how many match. Read-only."""
    query = select(User)
    count = select(func.count()).select_from(User)
    if role is not None:
        query = query.where(User.role == role)
        count = count.where(User.role == role)
    rows = session.scalars(
        query.order_by(User.email).offset((page_number - 1) * per_page).limit(per_page)
    ).all()
    return list(rows), session.scalar(count) or 0


def generated_password() -> str:
    """A random initial password (20 characters, about 120 bits)."""
    return secrets.token_urlsafe(15)


def add(
    session: Session, email: str, role: Role, password: str | None = None
) -> tuple[User, str | None]:
    """Add a user; returns the user and the generated password when none was given (to show
    once: it is not kept). Commits. Raises `AccountError` naming the field (a taken address
    included), so running it twice adds one user."""
    try:
        address = normalise_email(email)
    except ValueError:
        raise AccountError("email", "not a valid email address") from None
    generated = None
    if password:
        check_new(password)
    else:
        password = generated = generated_password()
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise AccountError("email", "a user with this address exists already")
    user = User(email=address, role=role, password_hash=generate_password_hash(password))
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AccountError("email", "a user with this address exists already") from None
    return user, generated


def _lock_admins(session: Session) -> int:
    """How many active admins there are, with their rows locked until the commit."""
    ids = session.scalars(
        select(User.id)
        .where(User.role == Role.ADMIN, User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).all()
    return len(ids)


def _target(session: Session, actor_id: int, user_id: int, what: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise LookupError(user_id)
    if user.id == actor_id:
        raise AccountError("user", f"you cannot {what} yourself; ask another admin")
    return user


def change_role(session: Session, actor_id: int, user_id: int, role: Role) -> User:
    """Give a user another role. Commits. LookupError for no such user; `AccountError` for
    yourself or the last active admin. Rerunning with the same role changes nothing."""
    user = _target(session, actor_id, user_id, "change the role of")
    demoted = user.role is Role.ADMIN and role is not Role.ADMIN and user.active
    if demoted and _lock_admins(session) <= 1:
        session.rollback()
        raise AccountError("role", "this is the last active admin; make another admin first")
    user.role = role
    session.commit()
    return user


def set_active(session: Session, actor_id: int, user_id: int, active: bool) -> User:
    """Deactivate (signed out everywhere at once, and cannot sign in) or reactivate a user.
    Commits. LookupError for no such user; `AccountError` for yourself or the last active
    admin. Safe to rerun."""
    user = _target(session, actor_id, user_id, "deactivate" if not active else "reactivate")
    if not active and user.active and user.role is Role.ADMIN and _lock_admins(session) <= 1:
        session.rollback()
        raise AccountError("user", "this is the last active admin; make another admin first")
    if user.active and not active:
        user.session_version += 1
    user.active = active
    session.commit()
    return user
