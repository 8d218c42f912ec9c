"""Forgetting compiled MJML nobody uses any more.

`emails.mjml.compiled_html` stores every source it compiles, keyed by its SHA-256. The admin's
live preview compiles a new source at each pause in typing, so an afternoon of editing leaves
hundreds of rows of 20 KB HTML behind. What is still needed: the current source of every
template and of every system email. Campaigns being sent do not need the cache (their HTML is
frozen on the campaign when sending starts).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailer.campaigns.models import Template
from mailer.database import utcnow
from mailer.emails.models import CompiledTemplate
from mailer.emails.rendering import EMAIL_DIR

# Younger rows stay: a marketer may come back to a draft seen in a preview this afternoon.
KEEP_RECENT = timedelta(days=1)
_CHUNK = 500


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def in_use(session: Session) -> set[str]:
    """Digests of the sources compiled on demand today: templates and system emails."""
    digests = {_digest(mjml) for mjml in session.scalars(select(Template.mjml))}
    for path in EMAIL_DIR.glob("*/body.mjml"):
        digests.add(_digest(path.read_text(encoding="utf-8")))
    return digests


def purge_unused(session: Session, keep_recent: timedelta = KEEP_RECENT) -> int:
    """Delete compilations of sources no template or system email has any more, older than
    `keep_recent`; returns how many. Commits. Safe to rerun and to run beside sends: a source
    needed again is compiled again."""
    keep = in_use(session)
    cutoff = utcnow() - keep_recent
    old = session.scalars(
        select(CompiledTemplate.source_sha256).where(CompiledTemplate.created_at < cutoff)
    ).all()
    unused = [digest for digest in old if digest not in keep]
    for start in range(0, len(unused), _CHUNK):
        chunk = unused[start : start + _CHUNK]
        session.execute(
            delete(CompiledTemplate)
            .where(CompiledTemplate.source_sha256.in_(chunk))
            .execution_options(synchronize_session=False)
        )
    session.commit()
    return len(unused)
