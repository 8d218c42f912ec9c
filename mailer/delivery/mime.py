"""Build the MIME message: text and HTML alternatives, unsubscribe headers, our own ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from mailer.database import utcnow
from mailer.delivery.addresses import wire_address

# Header values come from people (names) and marketers (subjects): refuse, never fold, CR/LF.
_FORBIDDEN = str.maketrans("", "", "\r\n\x00")


class HeaderInjection(ValueError):
    pass


def _clean(value: str, name: str) -> str:
    if value != value.translate(_FORBIDDEN):
        raise HeaderInjection(f"{name} contains a line break")
    return value


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


# Plain SMTP policy: non-ASCII names become RFC 2047 encoded words any reader decodes. Long
# header values (token URLs) stay whole instead of being folded into encoded words, which mail
# clients would not read as a List-Unsubscribe URL. SMTPUTF8 only for non-ASCII local parts.
ASCII_POLICY = policy.SMTP.clone(max_line_length=998)
UTF8_POLICY = policy.SMTPUTF8.clone(max_line_length=998)
BODY_LINE = 76


def _address(name: str, addr: str) -> Address:
    local, _, domain = addr.rpartition("@")
    return Address(display_name=_clean(name, "name"), username=local, domain=domain)


def build(envelope: Envelope, text: str, html: str) -> EmailMessage:
    to_addr, utf8 = wire_address(envelope.to_email)
    head_policy = UTF8_POLICY if utf8 else ASCII_POLICY
    # The bodies are encoded as they are set, under the message's policy at that moment: RFC
    # 2045 caps quoted-printable lines at 76 characters (SpamAssassin scores longer ones).
    msg = EmailMessage(policy=head_policy.clone(max_line_length=BODY_LINE))
    from_name, from_addr = parseaddr(_clean(envelope.sender, "From"))
    msg["From"] = _address(from_name, from_addr)
    msg["To"] = _address(envelope.to_name, to_addr)
    msg["Subject"] = _clean(envelope.subject, "subject")
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = f"<{_clean(envelope.message_id, 'Message-ID')}>"
    msg["MIME-Version"] = "1.0"
    if envelope.unsubscribe_url:
        # RFC 8058: exactly one https URL for one-click; the POST carries the body below.
        msg["List-Unsubscribe"] = f"<{_clean(envelope.unsubscribe_url, 'unsubscribe URL')}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if envelope.list_id:
        msg["List-Id"] = _clean(envelope.list_id, "List-Id")
    for key, value in envelope.extra_headers.items():
        msg[_clean(key, "header name")] = _clean(value, key)
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    msg.policy = head_policy  # headers: long URLs stay whole when written out
    return msg


def serialize(msg: EmailMessage) -> bytes:
    """The message's bytes, refused if the header block holds a header we did not set.

    Python's email package decodes RFC 2047 words while refolding address headers, so a
    display name like `=?utf-8?q?Eve=0D=0ABcc:...?=` can come out as a real line break
    (fixed upstream by verify_generated_headers in 3.11.10/3.12.5). Checking the output
    catches that and any other way a value could smuggle a header in.
    """
    data = msg.as_bytes()
    head = data.split(b"\r\n\r\n", 1)[0]
    starts = [line for line in head.split(b"\r\n") if line and not line[:1].isspace()]
    expected = len(msg.keys())
    if len(starts) != expected or any(b":" not in line for line in starts):
        raise HeaderInjection("a header value produced extra header lines")
    return data
