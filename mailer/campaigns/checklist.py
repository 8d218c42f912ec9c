"""The review before a campaign goes out: what must be right (blocking) and what should be.

Blocking items are the ones the send would refuse or regret: no subject, no sender address,
content that does not compile or has no visible unsubscribe link, nobody to send to. DKIM is
advice, not a block: mail goes out unsigned without it, but Gmail and Yahoo want it from bulk
senders. The send itself (`lifecycle.send_now`/`schedule`) checks the content again, so a
review that went stale cannot let bad content through.

Reads only (the content check may fill the compiled-template cache in its own transaction);
rerunning is safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.campaigns.content import NO_UNSUBSCRIBE, build_content
from mailer.campaigns.models import Campaign
from mailer.campaigns.sandbox import ContentError
from mailer.campaigns.templates import readiness
from mailer.config import Settings
from mailer.emails.mjml import MjmlUnavailable


@dataclass(frozen=True)
class Item:
    key: str
    label: str
    ok: bool
    blocking: bool
    detail: str = ""


@dataclass(frozen=True)
class Review:
    items: list[Item]
    # Content problems by field ("line 3: ..."), for the marketer to fix in the editor.
    content_errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(item.ok for item in self.items if item.blocking)

    @property
    def blocking(self) -> list[Item]:
        return [item for item in self.items if item.blocking and not item.ok]


def dkim_configured(settings: Settings) -> bool:
    """A domain, a selector and a key (a PEM file, or one generated in the admin)."""
    key = settings.dkim_key_path or getattr(settings, "dkim_private_key", b"")
    return bool(settings.dkim_domain and settings.dkim_selector and key)


def _content(session: Session, campaign: Campaign, node: str) -> dict[str, list[str]]:
    try:
        build_content(
            session,
            mjml=campaign.template.mjml,
            text=campaign.template.text,
            subject=campaign.subject,
            preheader=campaign.preheader or "",
            name=campaign.name,
            require_unsubscribe=True,
            node=node,
        )
    except ContentError as exc:
        return exc.errors
    except MjmlUnavailable as exc:
        return {"mjml": [str(exc)]}
    return {}


def review(
    session: Session,
    campaign: Campaign,
    settings: Settings,
    audience: int,
    send_at: datetime | None = None,
    now: datetime | None = None,
) -> Review:
    """Every item for `campaign`, given its current `audience` count and the planned
    `send_at` (None: now)."""
    errors = _content(session, campaign, settings.node_binary)
    unsubscribe = readiness(campaign.template)
    other = {f: [m for m in ms if NO_UNSUBSCRIBE not in m] for f, ms in errors.items()}
    other = {f: ms for f, ms in other.items() if ms}
    items = [
        Item("subject", "Subject set", bool(campaign.subject.strip()), True, campaign.subject),
        Item(
            "from",
            "From address set",
            bool(campaign.from_email.strip()),
            True,
            f"{campaign.from_name} <{campaign.from_email}>" if campaign.from_email else "",
        ),
        Item(
            "unsubscribe",
            "Unsubscribe link in the template",
            unsubscribe.campaign_ready,
            True,
            unsubscribe.reason or campaign.template.name,
        ),
        Item(
            "content",
            "Content compiles and passes the template checks",
            not other,
            True,
            "; ".join(m for ms in other.values() for m in ms),
        ),
        Item(
            "audience",
            "Audience not empty",
            audience > 0,
            True,
            f"{audience:,} recipient{'s' if audience != 1 else ''}",
        ),
        Item(
            "dkim",
            "DKIM signing configured",
            dkim_configured(settings),
            False,
            (
                f"{settings.dkim_selector}._domainkey.{settings.dkim_domain}"
                if dkim_configured(settings)
                else "messages go out unsigned; Gmail and Yahoo expect DKIM from bulk senders"
            ),
        ),
    ]
    if send_at is not None and now is not None and send_at <= now:
        items.append(
            Item("time", "Send time in the future", False, True, "the planned time has passed")
        )
    return Review(items, errors)
