"""The local mail catcher: a real SMTP server on loopback that keeps every message in a Maildir.

It is what `mailer run` sends to when no MAILER_SMTP_URL is set, and what the tests read mail
from. The Outbox pages show the same Maildir.
"""

from __future__ import annotations

import mailbox
import re
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope

_UNIQUE = re.compile(r"(\d+)\.M(\d+)P\d+Q(\d+)\.")


def arrival(key: str) -> tuple[int, int, int]:
    """Where a catcher message falls in arrival order, from its Maildir key.

    Keys are "<seconds>.M<microseconds>P<pid>Q<count>.<host>" with the microseconds not
    zero-padded, so sorting keys as text puts M99 after M123456 within one second. The
    catcher is one process, so its count breaks ties the clock cannot.
    """
    found = _UNIQUE.match(key)
    if found is None:
        return (0, 0, 0)
    seconds, micro, count = found.groups()
    return (int(seconds), int(micro), int(count))


class MaildirHandler:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(str(self.path), create=False)

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        headers = (
            f"X-Catcher-Mail-From: {envelope.mail_from}\r\n"
            f"X-Catcher-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        self.maildir.add(headers + data)
        return "250 Message accepted for delivery"


class Catcher:
    def __init__(self, path: Path, host: str = "127.0.0.1", port: int = 1025) -> None:
        self.handler = MaildirHandler(path)
        self.controller = Controller(
            self.handler,
            hostname=host,
            port=port,
            enable_SMTPUTF8=True,
            data_size_limit=50 * 1024 * 1024,
        )

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> Catcher:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
