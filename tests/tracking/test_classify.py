"""Machine or person: the rules on the user agents and addresses proxies and scanners use."""

from __future__ import annotations

import pytest

from mailer.tracking.classify import by_client, classify
from mailer.tracking.models import EventKind

OPEN, CLICK = EventKind.OPEN, EventKind.CLICK
LATER = 3600.0  # an hour after sending: timing says nothing

IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
MAC_MAIL = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
OUTLOOK_DESKTOP = (
    "Mozilla/4.0 (compatible; ms-office; MSOffice 16) Microsoft Outlook 16.0.17328; Pro"
)
OUTLOOK_WIN = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.10.1"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
YAHOO_PROXY = (
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 YahooMailProxy; "
    "https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
)

CASES = [
    # (what, kind, ip, user agent, seconds after sending, expected reason or None)
    ("Apple MPP prefetch", OPEN, "17.58.63.1", "Mozilla/5.0", LATER, "apple_mpp"),
    ("Apple MPP over IPv6", OPEN, "2620:149:a44:1::5", "Mozilla/5.0", LATER, "apple_mpp"),
    ("Apple MPP, v4-mapped", OPEN, "::ffff:17.141.20.8", "Mozilla/5.0", LATER, "apple_mpp"),
    ("Apple MPP, no agent", OPEN, "17.253.0.4", "", LATER, "apple_mpp"),
    ("Apple staff in Mail", OPEN, "17.58.63.1", MAC_MAIL, LATER, None),
    ("iPhone Mail, MPP off", OPEN, "81.166.12.40", IPHONE_MAIL, LATER, None),
    ("bare agent elsewhere", OPEN, "198.51.100.9", "Mozilla/5.0", LATER, "bare_user_agent"),
    ("no agent at all", OPEN, "198.51.100.9", None, LATER, "no_user_agent"),
    ("Gmail image proxy", OPEN, "66.249.84.200", GMAIL_PROXY, LATER, "google_image_proxy"),
    ("Yahoo image proxy", OPEN, "98.136.103.23", YAHOO_PROXY, LATER, "yahoo_mail_proxy"),
    ("Outlook desktop", OPEN, "62.92.5.13", OUTLOOK_DESKTOP, LATER, None),
    ("Outlook for Windows", OPEN, "62.92.5.13", OUTLOOK_WIN, LATER, None),
    ("Thunderbird", OPEN, "2001:db8::7", THUNDERBIRD, LATER, None),
    ("Chrome webmail", OPEN, "203.0.113.5", CHROME, LATER, None),
    (
        "Office link check",
        CLICK,
        "40.94.31.2",
        "Microsoft Office Existence Discovery",
        LATER,
        "scanner:microsoft",
    ),
    (
        "Office protocol discovery",
        CLICK,
        "52.100.1.1",
        "Microsoft Office Protocol Discovery",
        LATER,
        "scanner:microsoft",
    ),
    ("SafeLinks", CLICK, "40.94.31.2", f"{CHROME} SafeLinks", LATER, "scanner:microsoft"),
    ("BingPreview", CLICK, "40.77.167.1", f"{CHROME} BingPreview/1.0b", LATER, "scanner:microsoft"),
    (
        "Proofpoint URL Defense",
        CLICK,
        "148.163.150.1",
        "Mozilla/5.0 (compatible; Proofpoint URL Defense)",
        LATER,
        "scanner:proofpoint",
    ),
    (
        "Mimecast",
        CLICK,
        "205.139.110.30",
        "Mozilla/5.0 (compatible; Mimecast URL Protect)",
        LATER,
        "scanner:mimecast",
    ),
    (
        "Barracuda",
        OPEN,
        "209.222.82.1",
        "Mozilla/5.0 (compatible; Barracuda Sentinel)",
        LATER,
        "scanner:barracuda",
    ),
    (
        "Headless Chrome sandbox",
        CLICK,
        "34.1.2.3",
        CHROME.replace("Chrome/", "HeadlessChrome/"),
        LATER,
        "headless_browser",
    ),
    (
        "Slack unfurl",
        CLICK,
        "3.3.3.3",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        LATER,
        "link_preview",
    ),
    ("script", CLICK, "198.51.100.1", "python-requests/2.31.0", LATER, "automated_client"),
    ("curl", CLICK, "198.51.100.1", "curl/8.5.0", LATER, "automated_client"),
    ("crawler", OPEN, "198.51.100.1", "ExampleBot/1.0 (crawler)", LATER, "automated_client"),
    # Timing: the delivery's sent_at (MAILER_MACHINE_OPEN_SECONDS = 10 here).
    ("open at delivery", OPEN, "203.0.113.5", CHROME, 3.0, "soon_after_delivery"),
    ("open before sent_at", OPEN, "203.0.113.5", CHROME, -1.0, "soon_after_delivery"),
    ("open after 10 s", OPEN, "203.0.113.5", CHROME, 10.0, None),
    ("click at delivery", CLICK, "203.0.113.5", CHROME, 1.0, "click_before_reading"),
    ("click after 5 s", CLICK, "203.0.113.5", CHROME, 5.0, None),
    ("send time unknown", OPEN, "203.0.113.5", CHROME, None, None),
    ("who beats when", OPEN, "17.58.63.1", "Mozilla/5.0", 1.0, "apple_mpp"),
]


@pytest.mark.parametrize(
    ("kind", "ip", "agent", "seconds", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_classification(kind, ip, agent, seconds, expected):
    verdict = classify(kind, ip, agent, seconds, machine_open_seconds=10)
    assert verdict.reason == expected
    assert verdict.machine is (expected is not None)


def test_a_garbled_address_is_not_an_error():
    assert by_client("not an ip", CHROME) is None
    assert by_client(None, "Mozilla/5.0") == "bare_user_agent"
