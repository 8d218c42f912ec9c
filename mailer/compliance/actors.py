"""Who did it, in words: the staff audit log keeps ids and names as they were; pages show a
staff user's address, an API key's name, or a command-line or scheduled actor."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.accounts.models import User
from mailer.compliance.models import StaffAccess


def names(session: Session, rows: Iterable[StaffAccess]) -> dict[int, str]:
    """Each row's actor as one line, by row id, with one query for the users. Read-only."""
    rows = list(rows)
    user_ids = {r.user_id for r in rows if r.user_id is not None}
    emails = dict(session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all())
    out = {}
    for row in rows:
        if row.user_id is not None:
            out[row.id] = emails.get(row.user_id, f"user {row.user_id} (deleted)")
        elif row.api_key_id is not None:
            out[row.id] = f"API key {row.api_key_id} ({row.api_key_name or 'no name'})"
        else:
            out[row.id] = row.api_key_name or "unknown"
    return out
