"""Was it a person? Opens and clicks made by proxies, prefetchers and scanners.

Apple Mail Privacy Protection fetches every image through Apple's proxies whether or not the
message is read, Gmail and Yahoo fetch through their image proxies, and corporate security
scanners (Proofpoint, Mimecast, Barracuda, Microsoft's link checks, ...) fetch every image
and follow every link at delivery. Those hits are stored as machine events with the rule that
matched (`reason`) and kept out of every human figure.

Two halves, because they are known at different times:
- `by_client(ip, user_agent)`: who fetched. Known at the hit itself (no database), so the
  IP is looked at there and never stored: only the reason travels on.
- `by_timing(kind, seconds_after_send, machine_open_seconds)`: too soon after sending for a
  person. Needs the delivery's `sent_at`, which the flush job reads.
`classify` combines both (tests, and anyone holding all facts at once).

The rules are deliberately plain tables: a false "machine" only moves a hit from one column to
the other, it never drops it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from mailer.tracking.models import EventKind

# Apple's own networks; Mail Privacy Protection prefetches come from them with the bare
# user agent "Mozilla/5.0" (a real browser or mail client always says more).
APPLE_NETWORKS = tuple(
    ipaddress.ip_network(net) for net in ("17.0.0.0/8", "2620:149::/32", "2a01:b740::/32")
)
BARE_USER_AGENT = "Mozilla/5.0"

# (reason, pattern searched in the user agent, case-insensitive); first match wins.
# Not here on purpose: Outlook desktop ("Microsoft Outlook", "ms-office; MSOffice") fetches
# images when a person opens the message, so its hits are human.
USER_AGENT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        ("google_image_proxy", r"GoogleImageProxy|ggpht\.com"),
        ("yahoo_mail_proxy", r"YahooMailProxy"),
        ("scanner:proofpoint", r"Proofpoint"),
        ("scanner:mimecast", r"Mimecast"),
        ("scanner:barracuda", r"Barracuda"),
        ("scanner:microsoft", r"Microsoft Office (Existence|Protocol) Discovery|SafeLinks"),
        ("scanner:microsoft", r"BingPreview"),
        ("scanner:symantec", r"Symantec|MessageLabs"),
        ("scanner:trendmicro", r"Trend ?Micro"),
        ("scanner:cisco", r"IronPort|Cisco"),
        ("scanner:forcepoint", r"Forcepoint|Websense"),
        ("scanner:sophos", r"Sophos"),
        ("scanner:trellix", r"FireEye|Trellix"),
        ("scanner:zscaler", r"Zscaler"),
        ("scanner:checkpoint", r"Avanan|Check ?Point"),
        ("headless_browser", r"HeadlessChrome|PhantomJS|Headless"),
        (
            "link_preview",
            r"Slackbot|Twitterbot|facebookexternalhit|Discordbot|TelegramBot|WhatsApp/"
            r"|LinkedInBot|SkypeUriPreview|Iframely",
        ),
        (
            "automated_client",
            r"\b(bot|crawler|spider|scanner)\b|python-requests|python-urllib|aiohttp|httpx"
            r"|curl/|wget/|Go-http-client|Java/|okhttp|libwww-perl|node-fetch|axios/",
        ),
    )
)

# A click this soon after sending came from the receiving side's scanner, not a reader.
MACHINE_CLICK_SECONDS = 2


@dataclass(frozen=True)
class Verdict:
    machine: bool
    reason: str | None  # None for a person


def _ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address((value or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_apple(ip: str | None) -> bool:
    address = _ip(ip)
    return address is not None and any(
        address.version == net.version and address in net for net in APPLE_NETWORKS
    )


def by_client(ip: str | None, user_agent: str | None) -> str | None:
    """The machine reason given who fetched, or None for what looks like a person."""
    agent = (user_agent or "").strip()
    bare = agent in ("", BARE_USER_AGENT)
    if bare and _is_apple(ip):
        return "apple_mpp"
    if not agent:
        return "no_user_agent"
    if agent == BARE_USER_AGENT:
        return "bare_user_agent"
    for reason, pattern in USER_AGENT_RULES:
        if pattern.search(agent):
            return reason
    return None


def by_timing(
    kind: EventKind, seconds_after_send: float | None, machine_open_seconds: int
) -> str | None:
    """The machine reason given when the hit came, or None. Unknown send time: no opinion."""
    if seconds_after_send is None:
        return None
    if kind is EventKind.OPEN and seconds_after_send < machine_open_seconds:
        return "soon_after_delivery"
    if kind is EventKind.CLICK and seconds_after_send < MACHINE_CLICK_SECONDS:
        return "click_before_reading"
    return None


def classify(
    kind: EventKind,
    ip: str | None,
    user_agent: str | None,
    seconds_after_send: float | None,
    machine_open_seconds: int,
) -> Verdict:
    reason = by_client(ip, user_agent) or by_timing(kind, seconds_after_send, machine_open_seconds)
    return Verdict(machine=reason is not None, reason=reason)
