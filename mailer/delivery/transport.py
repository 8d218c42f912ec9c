"""SMTP out, configured by one URL; failures split into permanent and temporary.

`smtp://user:pass@host:587?starttls=1`, `smtps://host:465`, `smtp://127.0.0.1:1025` (the
dev catcher). Permanent means the address was refused (5xx): fail and suppress. Temporary is
everything a retry may fix (4xx, connection trouble).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from mailer.delivery.addresses import wire_address


class SendError(Exception):
    def __init__(self, message: str, permanent: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    starttls: bool
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise ValueError("MAILER_SMTP_URL must start with smtp:// or smtps://")
        query = parse_qs(parts.query)
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (465 if implicit else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit,
            starttls=query.get("starttls", ["0"])[0] in {"1", "true", "yes"},
            timeout=float(query.get("timeout", ["30"])[0]),
        )

    def __repr__(self) -> str:  # never print the password
        return f"SmtpTarget({self.host}:{self.port}, tls={self.implicit_tls or self.starttls})"


def send(target: SmtpTarget, sender: str, recipient: str, data: bytes) -> None:
    """Send one message over one connection. Raises `SendError`."""
    rcpt, utf8 = wire_address(recipient)
    try:
        if target.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                target.host,
                target.port,
                timeout=target.timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=target.timeout)
        with client:
            client.ehlo()
            if target.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if target.username:
                client.login(target.username, target.password or "")
            options = ["SMTPUTF8"] if utf8 else []
            client.sendmail(sender, [rcpt], data, mail_options=options)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        raise SendError(f"{code} {_reply(reply)}", permanent=500 <= code < 600, code=code) from exc
    except smtplib.SMTPDataError as exc:
        # The server read the message and refused it for this recipient.
        raise SendError(
            f"{exc.smtp_code} {_reply(exc.smtp_error)}",
            permanent=500 <= exc.smtp_code < 600,
            code=exc.smtp_code,
        ) from exc
    except smtplib.SMTPResponseException as exc:
        # Auth or sender refused: our configuration, not the address. Retry, never suppress.
        raise SendError(
            f"{exc.smtp_code} {_reply(exc.smtp_error)}", permanent=False, code=exc.smtp_code
        ) from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise SendError(f"{type(exc).__name__}: {exc}", permanent=False) from exc


def _reply(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
