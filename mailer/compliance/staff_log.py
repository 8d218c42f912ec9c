"""The staff audit log: every view and export of personal data by staff is itself on record.

Accountability (GDPR Art. 5(2), 32): a controller must be able to say who looked at whose
data. The person looked at is stored as a keyed HMAC of their normalised address (the ledger's
key, `mailer.pseudonyms`) plus a masked form for reading, never the address: the log of who
looked must not become another copy of what they looked at. Filters are stored as given,
except an address among them, which is replaced by its masked form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.compliance.models import StaffAccess
from mailer.pseudonyms import keyed


@dataclass(frozen=True)
class Staff:
    """Who acted: an API key (id and name) or a signed-in user, and from where."""

    api_key_id: int | None = None
    api_key_name: str = ""
    user_id: int | None = None
    ip: str | None = None


def mask(email: str) -> str:
    """`jane@example.com` -> `j***@example.com`: enough to read a log, not to mail anyone."""
    local, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def record(
    session: Session,
    staff: Staff,
    action: str,
    endpoint: str,
    subject_email: str | None = None,
    subscriber_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> StaffAccess:
    """Log one access. `subject_email` must already be normalised (the HMAC must match the
    ledger's). Commits, so the access is on record before any data leaves; every call adds
    a row (a repeated view is a second view)."""
    row = StaffAccess(
        api_key_id=staff.api_key_id,
        api_key_name=staff.api_key_name[:200],
        user_id=staff.user_id,
        ip=staff.ip[:64] if staff.ip else None,
        action=action,
        endpoint=endpoint[:200],
        subject_hmac=keyed(session, subject_email),
        subject_masked=mask(subject_email) if subject_email else None,
        subscriber_id=subscriber_id,
        details=details or {},
    )
    session.add(row)
    session.commit()
    return row


def page(
    session: Session,
    page_number: int,
    per_page: int,
    action: str | None = None,
    subject_email: str | None = None,
    api_key_id: int | None = None,
) -> tuple[list[StaffAccess], int]:
    """One page of the log, newest first (by id: stable while rows are added), and the total
    matching. `subject_email` (normalised) finds every access to that person. Read-only."""
    query = select(StaffAccess)
    if action:
        query = query.where(StaffAccess.action == action)
    if subject_email:
        query = query.where(StaffAccess.subject_hmac == keyed(session, subject_email))
    if api_key_id is not None:
        query = query.where(StaffAccess.api_key_id == api_key_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(StaffAccess.id.desc()).offset((page_number - 1) * per_page).limit(per_page)
    ).all()
    return list(rows), total
