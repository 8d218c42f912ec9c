"""System emails as wire bytes: text and HTML alternatives, unsubscribe headers, our own ids.

Assembled directly with `mailer.delivery.wire` (as campaign messages are), not through
`email.message.EmailMessage`: its policy machinery cost about 4 ms a message, a quarter of
what a confirmation email cost the worker. Header values that come from people (names) and from
marketers (subjects) are RFC 2047-encoded when needed; CR, LF and NUL are refused
(`HeaderInjection`), never folded away.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from email.utils import parseaddr

from mailer.delivery import wire
from mailer.delivery.addresses import wire_address
from mailer.delivery.wire import HeaderInjection


@dataclass
class Envelope:
    """What a message needs besides its body; the SMTP envelope is derived from it."""

    sender: str  # "Name <addr>"
    to_email: str
    to_name: str
    subject: str
    message_id: str  # without angle brackets
    unsubscribe_url: str | None = None
    list_id: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)


_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 field name: printable ASCII but ":"


def encode(envelope: Envelope, text: str, html: str) -> bytes:
    """The message's bytes: multipart/alternative, both parts UTF-8 quoted-printable.

    The envelope recipient and the To header use `wire_address` (ASCII with an IDNA domain
    where possible); the header block is UTF-8 only when an address needs SMTPUTF8.
    Long header values (token URLs) stay on one line: clients would not read a folded
    List-Unsubscribe as a URL. Raises `HeaderInjection`.
    """
    from_name, from_raw = parseaddr(wire.clean(envelope.sender, "From"))
    from_addr, from_utf8 = wire_address(from_raw)
    to_addr, to_utf8 = wire_address(envelope.to_email)
    headers = [
        f"From: {wire.mailbox(from_name, from_addr, 'From')}",
        f"To: {wire.mailbox(envelope.to_name, to_addr, 'To')}",
        wire.unstructured("Subject", envelope.subject),
        wire.date(),
        wire.header("Message-ID", f"<{envelope.message_id}>"),
    ]
    if envelope.unsubscribe_url:
        # RFC 8058: exactly one https URL for one-click; the POST carries the body below.
        headers.append(wire.header("List-Unsubscribe", f"<{envelope.unsubscribe_url}>"))
        headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    if envelope.list_id:
        headers.append(wire.header("List-Id", envelope.list_id))
    for name, value in envelope.extra_headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise HeaderInjection(f"{name!r} is not a header name")
        headers.append(wire.header(name, value))
    return wire.assemble(
        headers,
        "=_mailer_" + secrets.token_hex(12),
        wire.quoted_printable(text),
        wire.quoted_printable(html),
        utf8=from_utf8 or to_utf8,
    )
