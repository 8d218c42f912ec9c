"""Compiled MJML that nobody uses any more is forgotten; what templates and system emails use,
and anything compiled today, stays."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from mailer.campaigns import compilations
from mailer.campaigns.models import Template
from mailer.database import utcnow
from mailer.emails import mjml
from mailer.emails.models import CompiledTemplate
from mailer.emails.rendering import EMAIL_DIR
from tests.campaigns.conftest import MJML


def _variant(n: int) -> str:
    return MJML.replace("Our autumn offer is here.", f"Draft number {n}.")


def _digests(session) -> set[str]:
    session.expire_all()
    return set(session.scalars(select(CompiledTemplate.source_sha256)))


def test_old_unused_compilations_go_and_the_rest_stay(session):
    saved = Template(name="Newsletter", mjml=_variant(1))
    session.add(saved)
    session.commit()
    confirm = (EMAIL_DIR / "confirm" / "body.mjml").read_text(encoding="utf-8")
    mjml._memory.clear()  # compiled earlier in this process: this database has no row yet
    # What a template, a system email and three live-preview drafts left in the cache.
    for source in (saved.mjml, confirm, _variant(2), _variant(3), _variant(4)):
        mjml.compiled_html(session, source)
    digest = {n: compilations._digest(_variant(n)) for n in (1, 2, 3, 4)}
    confirm_digest = compilations._digest(confirm)
    assert {*digest.values(), confirm_digest} <= _digests(session)
    # Two days pass for everything but the last draft, looked at again this morning.
    session.execute(
        update(CompiledTemplate)
        .where(CompiledTemplate.source_sha256 != digest[4])
        .values(created_at=utcnow() - timedelta(days=2))
    )
    session.commit()

    assert compilations.purge_unused(session) == 2
    left = _digests(session)
    assert digest[1] in left and confirm_digest in left and digest[4] in left
    assert digest[2] not in left and digest[3] not in left
    assert compilations.purge_unused(session) == 0  # rerunning is harmless

    # A purged draft saved later is compiled again on first use.
    saved.mjml = _variant(2)
    session.commit()
    mjml._memory.clear()
    html = mjml.compiled_html(session, saved.mjml)
    assert "Draft number 2." in html
    assert digest[2] in _digests(session)
