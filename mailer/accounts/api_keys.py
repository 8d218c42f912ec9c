"""API keys as an admin manages them: list, create (the key shown once), revoke.

Creation is `mailer.accounts.users.create_api_key` (only a SHA-256 of the key is stored);
this module adds the checks a form needs and revocation. A revoked key stops working at once:
`users.find_api_key` refuses it on the next request.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.accounts import users
from mailer.accounts.models import ApiKey, Role
from mailer.accounts.users import AccountError
from mailer.database import utcnow

MAX_NAME = 200


def page(session: Session, page_number: int, per_page: int) -> tuple[list[ApiKey], int]:
    """One page of keys, newest first, and how many there are. Read-only."""
    rows = session.scalars(
        select(ApiKey)
        .order_by(ApiKey.id.desc())
        .offset((page_number - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(rows), session.scalar(select(func.count()).select_from(ApiKey)) or 0


def create(session: Session, name: str, role: Role) -> tuple[ApiKey, str]:
    """A new key; returns the row and the key, which cannot be shown again. Commits.
    Raises `AccountError` on `name`. Each run makes another key."""
    name = " ".join(name.split())
    if not name:
        raise AccountError("name", 'name the key after what uses it, e.g. "CRM sync"')
    if len(name) > MAX_NAME:
        raise AccountError("name", f"use at most {MAX_NAME} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs"} for ch in name):
        raise AccountError("name", "must not contain control characters")
    return users.create_api_key(session, role, name)


def revoke(session: Session, key_id: int) -> ApiKey:
    """Revoke a key; it stops working at once. Commits. LookupError for no such key. Safe to
    rerun: the first revocation time stays."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise LookupError(key_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row
