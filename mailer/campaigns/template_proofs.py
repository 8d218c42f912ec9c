"""Test-sending a template from its editor, before any campaign uses it.

A template alone has no subject, sender or topic, and `proofs.send_test` sends a campaign.
So the editor's test goes out as an unsaved campaign built around the template: the subject
given (or the template's name), From the first sender identity (or `MAILER_MAIL_FROM`), and a
topic for the List-Id header (the first one, or a stand-in when there is none). `send_test`
renders it in memory and rolls the session back, so nothing of that campaign is ever stored;
the message is marked as a test ("[Test]" subject, `X-Mailer-Test: 1`, no tracking, links
that act for nobody), exactly as a campaign's proof.

Who commits: nobody; the session is rolled back. Rerunning sends the test again.
"""

from __future__ import annotations

from email.utils import parseaddr

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.campaigns import proofs
from mailer.campaigns.content import build_content
from mailer.campaigns.models import Campaign, Template
from mailer.config import Settings
from mailer.subscribers.models import Subscriber, Topic
from mailer.tokens import Tokens


def send_template_test(
    session: Session,
    settings: Settings,
    tokens: Tokens,
    template_id: int,
    addresses: list[str],
    subject: str = "",
    subscriber_id: int | None = None,
) -> list[dict[str, str]]:
    """Send the saved `template_id` to `addresses` as a test. Raises LookupError for an
    unknown template or subscriber, `ContentError` (with lines) for content that cannot go
    out (no unsubscribe link included), `HeaderInjection` for a bad subject."""
    template = session.get(Template, template_id)
    if template is None:
        raise LookupError(template_id)
    if subscriber_id is not None and session.get(Subscriber, subscriber_id) is None:
        raise LookupError(subscriber_id)
    subject = subject or template.name
    # Compile (and cache) before this session writes anything: on SQLite the compile cache's
    # own transaction would otherwise wait for our write lock.
    build_content(
        session,
        mjml=template.mjml,
        text=template.text,
        subject=subject,
        name=template.name,
        require_unsubscribe=True,
        node=settings.node_binary,
    )
    identities = getattr(settings, "sender_identities", ())
    if identities:
        sender_name, sender_email = identities[0].name, identities[0].email
    else:
        sender_name, sender_email = parseaddr(settings.mail_from)
    topic = session.scalar(select(Topic).order_by(Topic.id).limit(1))
    try:
        if topic is None:
            topic = Topic(slug="template-test", name="Template test", description="")
            session.add(topic)
            session.flush()
        campaign = Campaign(
            name=template.name,
            subject=subject,
            preheader="",
            from_name=sender_name or "mailer",
            from_email=sender_email or settings.mail_from,
            template_id=template.id,
            topic_id=topic.id,
            track_opens=False,
            track_clicks=False,
        )
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    except BaseException:
        session.rollback()
        raise
    # send_test rolls the session back once the message is prepared, taking this campaign
    # (and any stand-in topic) with it.
    try:
        return proofs.send_test(session, settings, tokens, campaign_id, addresses, subscriber_id)
    finally:
        session.rollback()  # already done unless send_test failed before preparing
