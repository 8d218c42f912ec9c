"""Keyed HMACs of personal values: how the ledger and the suppression list recognise a person
without keeping what identifies them. The key travels on the session (sessionmaker info)."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy.orm import Session

KEY_INFO = "ledger_key"


def keyed(session: Session, value: str | None) -> str | None:
    """HMAC-SHA256 of `value` under the deployment's key; None stays None."""
    if value is None:
        return None
    key = session.info.get(KEY_INFO)
    if not key:
        raise RuntimeError("the pseudonym key is not configured on this session")
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
