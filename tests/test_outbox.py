"""The catcher's Outbox and the tests' inbox list mail in the order it arrived.

Maildir keys carry unpadded microseconds, so text order is wrong within a second: a message
at .M99 would come after one at .M123456. Confirmation batches send many mails per second."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path

from mailer.devmail.catcher import Catcher, arrival
from mailer.devmail.outbox import Outbox
from tests.conftest import SMTP_PORTS
from tests.inbox import Inbox
from tests.services import free_port


def test_arrival_order_reads_the_numbers_not_the_text():
    keys = [
        "1700000001.M5P10Q1.host",
        "1700000000.M123456P10Q7.host",
        "1700000000.M99P10Q3.host",
        "1700000000.M99P10Q4.host",
    ]
    assert sorted(keys, key=arrival) == [
        "1700000000.M99P10Q3.host",
        "1700000000.M99P10Q4.host",
        "1700000000.M123456P10Q7.host",
        "1700000001.M5P10Q1.host",
    ]


def test_the_outbox_shows_the_newest_first_and_the_inbox_reads_oldest_first(tmp_path: Path):
    catcher = Catcher(tmp_path / "maildir", port=free_port()).start()
    SMTP_PORTS.add(catcher.port)
    try:
        with smtplib.SMTP("127.0.0.1", catcher.port) as smtp:
            for n in range(40):
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", f"{n}"
                msg["Date"] = "Mon, 23 Nov 2026 04:00:00 +0000"  # one second for all
                msg.set_content("hello")
                smtp.send_message(msg)
    finally:
        catcher.stop()

    outbox = Outbox(tmp_path / "maildir")
    assert [s.subject for s in outbox.list()] == [f"{n}" for n in reversed(range(40))]
    assert [s.subject for s in outbox.list(limit=3)] == ["39", "38", "37"]
    inbox = Inbox(tmp_path / "maildir")
    assert [str(m["Subject"]) for m in inbox.messages()] == [f"{n}" for n in range(40)]
