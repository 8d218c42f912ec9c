"""Appending to the consent ledger. There is no function here that changes a row: by design."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.subscribers.models import FormVersion, Subscriber


def truncate_ip(ip: str | None) -> str | None:
    """Keep the network, drop the host: IPv4 to /24, IPv6 to /48 (as analytics tools do)."""
    if not ip:
        return ip
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


@dataclass(frozen=True)
class Visit:
    """Who acted, as the web layer saw it: kept as evidence with each event."""

    ip: str | None = None
    user_agent: str | None = None
    locale: str | None = None


def record(
    session: Session,
    type_: ConsentEventType,
    subscriber: Subscriber,
    topics: list[str],
    source: ConsentSource,
    visit: Visit | None = None,
    form_version: FormVersion | None = None,
    evidence: dict[str, Any] | None = None,
    actor: str | None = None,
) -> ConsentEvent:
    """Chain one event onto the ledger. Flushed, not committed: the caller's transaction owns it."""
    visit = visit or Visit()
    event = ConsentEvent(
        type=type_,
        subscriber_id=subscriber.id,
        email=subscriber.email,
        topics=sorted(topics),
        lawful_basis="consent",
        form_id=form_version.form_id if form_version else None,
        form_version_id=form_version.id if form_version else None,
        consent_text_sha256=form_version.consent_text_sha256 if form_version else None,
        locale=visit.locale or subscriber.locale,
        source=source,
        ip=visit.ip,
        user_agent=visit.user_agent[:1000] if visit.user_agent else None,
        evidence=evidence or {},
        actor=actor,
        occurred_at=utcnow(),
    )
    return chain.append(session, event)
