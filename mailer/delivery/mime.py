"""Build the MIME message: text and HTML alternatives, unsubscribe headers, our own ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from mailer.database import utcnow

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


# Long header values (token URLs) stay whole instead of becoming RFC 2047 encoded words,
# which mail clients would not read as a List-Unsubscribe URL.
POLICY = policy.SMTPUTF8.clone(max_line_length=998)


def build(envelope: Envelope, text: str, html: str) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    name, addr = parseaddr(_clean(envelope.sender, "From"))
    local, _, domain = addr.partition("@")
    msg["From"] = Address(display_name=name, username=local, domain=domain)
    to_local, _, to_domain = envelope.to_email.rpartition("@")
    msg["To"] = Address(
        display_name=_clean(envelope.to_name, "name"), username=to_local, domain=to_domain
    )
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
    return msg
