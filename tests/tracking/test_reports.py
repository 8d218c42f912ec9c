"""Reading real-looking bounce and complaint mail (Postfix, Gmail, Outlook, Yahoo, Exim)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailer.campaigns import identity
from mailer.campaigns.identity import MessageRef
from mailer.tracking.bounces import kind_for_status
from mailer.tracking.models import BounceKind, BounceSource
from mailer.tracking.reports import parse
from tests.tracking.conftest import DOMAIN, sample

SECRET = "report-test-secret"
OURS = "<" + identity.message_id(SECRET, 12, 345, DOMAIN) + ">"
REF = MessageRef(12, 345)
RCPT = "ann.reader@example.com"

HARD, SOFT, COMPLAINT = BounceKind.HARD, BounceKind.SOFT, BounceKind.COMPLAINT
DSN, ARF = BounceSource.DSN, BounceSource.ARF

SAMPLES = [
    # file, kind, source, recipient found, status, when, words of the diagnostic
    (
        "postfix-hard-user-unknown.eml",
        HARD,
        DSN,
        RCPT,
        "5.1.1",
        datetime(2024, 5, 14, 7, 12, 43, tzinfo=UTC),
        "User unknown in virtual mailbox table",
    ),
    (
        "postfix-delayed.eml",
        SOFT,
        DSN,
        RCPT,
        "4.4.1",
        datetime(2024, 5, 14, 11, 15, 2, tzinfo=UTC),
        "Connection timed out",
    ),
    (
        "gmail-hard-no-such-user.eml",
        HARD,
        DSN,
        RCPT,
        "5.1.1",
        datetime(2024, 5, 14, 9, 14, 9, tzinfo=UTC),
        "does not exist",
    ),
    (
        "outlook-ndr-recipient-not-found.eml",
        HARD,
        DSN,
        RCPT,
        "5.1.10",
        datetime(2024, 5, 14, 7, 12, 44, tzinfo=UTC),
        "RESOLVER.ADR.RecipientNotFound",
    ),
    (
        # A provider blocking *us* (5.7.1) says nothing about the address: soft, not hard.
        "postfix-gmail-policy-block.eml",
        SOFT,
        DSN,
        RCPT,
        "5.7.1",
        datetime(2024, 5, 14, 7, 12, 45, tzinfo=UTC),
        "likely unsolicited mail",
    ),
    (
        "yahoo-arf-abuse.eml",
        COMPLAINT,
        ARF,
        RCPT,
        "",
        datetime(2024, 5, 14, 7, 12, 41, tzinfo=UTC),
        "Yahoo!-Mail-Feedback/2.0",
    ),
    (
        # Microsoft redacts the recipient; our Message-ID still names the delivery.
        "outlook-jmrp-abuse-redacted.eml",
        COMPLAINT,
        ARF,
        None,
        "",
        datetime(2024, 5, 14, 7, 12, 42, tzinfo=UTC),
        "Microsoft JMRP",
    ),
]


@pytest.mark.parametrize(
    ("name", "kind", "source", "recipient", "status", "when", "words"),
    SAMPLES,
    ids=[s[0] for s in SAMPLES],
)
def test_samples_parse_to_one_event_naming_our_delivery(
    name, kind, source, recipient, status, when, words
):
    [event] = parse(sample(name, OURS, RCPT), SECRET)
    assert (event.kind, event.source, event.status) == (kind, source, status)
    assert event.recipient == recipient
    assert event.message == REF
    assert event.occurred_at == when
    assert words in event.diagnostic
    assert RCPT not in event.diagnostic  # addresses are scrubbed from what is kept
    assert "\n" not in event.diagnostic and len(event.diagnostic) <= 500


@pytest.mark.parametrize("name", ["vacation-autoreply.eml", "exim-delivered-notice.eml"])
def test_mail_that_reports_no_failure_gives_nothing(name):
    assert parse(sample(name, OURS, RCPT), SECRET) == []


def test_a_message_id_with_a_forged_mac_names_no_delivery():
    forged = "<c12.d345.0123456789abcdef@news.example.org>"
    [event] = parse(sample("postfix-hard-user-unknown.eml", forged, RCPT), SECRET)
    assert event.message is None and event.recipient == RCPT
    [event] = parse(sample("outlook-jmrp-abuse-redacted.eml", forged), SECRET)
    assert event.message is None and event.recipient is None


def test_a_report_forwarded_as_an_attachment_is_still_read():
    inner = sample("postfix-hard-user-unknown.eml", OURS, RCPT)
    wrapper = (
        b"From: postmaster@news.example.org\r\nTo: bounces@news.example.org\r\n"
        b"Subject: Fwd: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="fwd"\r\n\r\n'
        b"--fwd\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        b"--fwd\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--fwd--\r\n"
    )
    [event] = parse(wrapper, SECRET)
    assert event.kind is HARD and event.message == REF


def test_garbage_is_no_report():
    assert parse(b"\x00\xff not mail at all", SECRET) == []
    assert parse(b"", SECRET) == []


STATUSES = [
    # status or reply, action, kind
    ("5.1.1", "failed", HARD),  # no such user
    ("5.1.10", "failed", HARD),  # Exchange: recipient not found
    ("5.2.1", "failed", HARD),  # mailbox disabled
    ("5.4.4", "failed", HARD),  # no such domain
    ("5.2.2", "failed", SOFT),  # mailbox full
    ("5.3.4", "failed", SOFT),  # message too big
    ("5.4.7", "failed", SOFT),  # gave up retrying
    ("5.7.1", "failed", SOFT),  # policy block of the sender
    ("5.7.26", "failed", SOFT),  # DMARC failure
    ("4.2.2", "failed", SOFT),
    ("4.4.1", "delayed", SOFT),
    ("5.1.1", "delayed", SOFT),
    ("2.0.0", "delivered", None),
    ("2.1.5", "relayed", None),
    ("550", "failed", HARD),
    ("552", "failed", SOFT),
    ("421", "failed", SOFT),
    ("", "failed", HARD),
    ("smtp; 550 5.1.1 <a@b.example>: Recipient address rejected", "failed", HARD),
]


@pytest.mark.parametrize(("status", "action", "kind"), STATUSES)
def test_kind_for_status(status, action, kind):
    assert kind_for_status(status, action) is kind
