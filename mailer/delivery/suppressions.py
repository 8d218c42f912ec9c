"""The suppression list: addresses we must not mail, known only by their keyed HMAC."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.delivery.models import BLOCKING, Suppression, SuppressionReason
from mailer.pseudonyms import keyed


def is_blocked(session: Session, email: str) -> bool:
    """True when mail to `email` must not go out (bounced, complained, blocked by staff).

    An erasure entry does not block: the person may sign up again with fresh consent."""
    return email in blocked(session, [email])


def reasons(session: Session, emails: Iterable[str]) -> dict[str, SuppressionReason]:
    """Each of `emails` on the list, with its reason (erasure entries too), in one query."""
    by_digest = {keyed(session, e): e for e in emails}
    if not by_digest:
        return {}
    rows = session.execute(
        select(Suppression.email_hmac, Suppression.reason).where(
            Suppression.email_hmac.in_(by_digest)
        )
    )
    return {by_digest[digest]: reason for digest, reason in rows}


def blocked(session: Session, emails: Iterable[str]) -> set[str]:
    """Those of `emails` that `is_blocked`, in one query (a batch of sign-ups or emails)."""
    return {e for e, reason in reasons(session, emails).items() if reason in BLOCKING}


def add(session: Session, email: str, reason: SuppressionReason, detail: str = "") -> None:
    """Suppress `email` (flushed, the caller commits). A blocking reason replaces an erasure
    entry; the address itself is scrubbed from `detail` (SMTP replies often quote it)."""
    detail = re.sub(re.escape(email), "<address>", detail, flags=re.IGNORECASE)[:2000]
    digest = keyed(session, email)
    row = session.scalar(select(Suppression).where(Suppression.email_hmac == digest))
    if row is None:
        session.add(Suppression(email_hmac=digest, reason=reason, detail=detail))
    elif reason in BLOCKING:
        row.reason, row.detail = reason, detail
    session.flush()
