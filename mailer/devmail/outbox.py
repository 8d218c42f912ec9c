"""Reading the catcher's Maildir: newest first, each message as HTML, text and raw source.

Newest means latest to arrive at the catcher, not the sender's Date header: a Date has
whole seconds only, and a batch of confirmations shares one."""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from mailer.devmail.catcher import arrival


@dataclass(frozen=True)
class Summary:
    key: str
    subject: str
    to: str
    sender: str
    date: datetime | None


def _parse(data: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(data)


def _date(msg: EmailMessage) -> datetime | None:
    try:
        return parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        return None


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _maildir(self) -> mailbox.Maildir:
        return mailbox.Maildir(str(self.path), create=True)

    def list(self, limit: int = 200) -> list[Summary]:
        box = self._maildir()
        items = []
        for key in sorted(box.keys(), key=arrival, reverse=True)[:limit]:
            msg = _parse(box.get_bytes(key))
            items.append(
                Summary(
                    key,
                    str(msg["Subject"] or ""),
                    str(msg["To"] or ""),
                    str(msg["From"] or ""),
                    _date(msg),
                )
            )
        return items

    def raw(self, key: str) -> bytes | None:
        try:
            return self._maildir().get_bytes(key)
        except KeyError:
            return None

    def message(self, key: str) -> EmailMessage | None:
        data = self.raw(key)
        return _parse(data) if data is not None else None

    @staticmethod
    def part(msg: EmailMessage, subtype: str) -> str | None:
        body = msg.get_body(preferencelist=(subtype,))
        return body.get_content() if body is not None else None
