"""An SMTP server on loopback that follows a script: defer, refuse, hang up before the body or
right after it, and remember exactly what it accepted and what it was sent before hanging up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from tests.campaigns.conftest import Received
from tests.conftest import SMTP_PORTS
from tests.services import free_port

# What the script says to do with one RCPT: accept (None), answer a reply line, or hang up.
HANG_UP = "hang up"


@dataclass
class Script:
    rcpt: Callable[[str], str | None] = lambda addr: None
    # Read the whole message, then close the connection without answering (the sender cannot
    # know whether it was accepted).
    hang_up_after_data: Callable[[str], bool] = lambda addr: False


@dataclass
class _Handler:
    script: Script
    received: list[Received] = field(default_factory=list)
    unanswered: list[Received] = field(default_factory=list)
    replies: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        reply = self.script.rcpt(address)
        with self.lock:
            key = "hang up at RCPT" if reply == HANG_UP else (reply or "250")[:3]
            self.replies[key] = self.replies.get(key, 0) + 1
        if reply == HANG_UP:
            server.transport.close()
            return "421 closing"  # never reaches the client
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        rcpt = envelope.rcpt_tos[0]
        content = bytes(envelope.original_content or envelope.content)
        if self.script.hang_up_after_data(rcpt):
            with self.lock:
                self.unanswered.append(Received(time.time(), rcpt, content))
            server.transport.close()
            return "421 closing"  # never reaches the client
        with self.lock:
            self.received.append(Received(time.time(), rcpt, content))
        return "250 Message accepted"


class ScriptedSmtp:
    def __init__(self, script: Script) -> None:
        self.handler = _Handler(script)
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=True
        )
        self.controller.start()
        SMTP_PORTS.add(self.port)

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=10"

    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def unanswered(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.unanswered)

    def replies(self) -> dict[str, int]:
        with self.handler.lock:
            return dict(self.handler.replies)

    def stop(self) -> None:
        self.controller.stop()
