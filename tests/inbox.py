"""Reading what the SMTP sink received, as a person reading their mail would."""

from __future__ import annotations

import mailbox
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from mailer.devmail.catcher import arrival

URL = re.compile(r"https?://[^\s\"'<>]+")


class Inbox:
    def __init__(self, path: Path) -> None:
        self.path = path

    def clear(self) -> None:
        for sub in ("new", "cur", "tmp"):
            for f in (self.path / sub).glob("*"):
                f.unlink()

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        box = mailbox.Maildir(str(self.path), create=False)
        parse = BytesParser(policy=policy.default).parsebytes
        msgs = [parse(box.get_bytes(k)) for k in sorted(box.keys(), key=arrival)]
        if to is not None:
            msgs = [m for m in msgs if to.lower() in str(m["To"]).lower()]
        return msgs

    def only(self, to: str | None = None) -> EmailMessage:
        msgs = self.messages(to)
        assert len(msgs) == 1, (
            f"expected one message, got {len(msgs)}: {[m['Subject'] for m in msgs]}"
        )
        return msgs[0]


def text_of(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def html_of(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("html",)).get_content()


def links(msg: EmailMessage) -> list[str]:
    """Every URL a person or a link scanner could follow: text part, HTML part, headers."""
    found = URL.findall(text_of(msg)) + re.findall(r'href="([^"]+)"', html_of(msg))
    header = str(msg.get("List-Unsubscribe", ""))
    found += re.findall(r"<(https?://[^>]+)>", header)
    return sorted({u.replace("&amp;", "&") for u in found if "/static/" not in u})


def link(msg: EmailMessage, path: str) -> str:
    matches = [u for u in URL.findall(text_of(msg)) if f"/{path}/" in u]
    assert matches, f"no /{path}/ link in: {text_of(msg)}"
    return matches[0]
