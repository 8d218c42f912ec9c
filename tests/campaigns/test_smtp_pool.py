"""The campaign sender's SMTP connection against a real server on loopback, with and without
ESMTP PIPELINING: every outcome is told apart the same way, and the bytes arrive intact."""

from __future__ import annotations

import smtplib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.delivery.pool import Outcome, SmtpConnection, _stuffed
from mailer.delivery.transport import SmtpTarget

MESSAGE = (
    b"From: news@shop.example\r\nTo: ann@example.org\r\nSubject: Hi\r\n\r\n"
    b".a line starting with a dot\r\n..two dots\r\nplain\r\n.\r\nlast"
)


@pytest.fixture(params=[True, False], ids=["pipelining", "one-at-a-time"])
def server(request, faulty_smtp):
    faulty_smtp.behaviour.pipelining = request.param
    return faulty_smtp


def test_messages_arrive_byte_for_byte_over_one_connection(server):
    with SmtpConnection(SmtpTarget.from_url(server.url)) as smtp:
        results = [
            smtp.send("news@shop.example", f"reader{i}@example.org", MESSAGE) for i in range(3)
        ]
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert [r.rcpt for r in server.received] == [f"reader{i}@example.org" for i in range(3)]
    # Dots stuffed on the way and removed by the server; a missing final CRLF is added.
    assert {r.data for r in server.received} == {MESSAGE + b"\r\n"}


def test_refusals_are_permanent_or_temporary_and_the_connection_goes_on(server):
    replies = {"gone@example.org": "550 5.1.1 No such user", "busy@example.org": "451 4.7.1 Later"}
    server.behaviour.rcpt = lambda addr: replies.get(addr)
    with SmtpConnection(SmtpTarget.from_url(server.url)) as smtp:
        gone = smtp.send("news@shop.example", "gone@example.org", MESSAGE)
        busy = smtp.send("news@shop.example", "busy@example.org", MESSAGE)
        fine = smtp.send("news@shop.example", "fine@example.org", MESSAGE)
    assert (gone.outcome, gone.code, gone.connection_lost) == (Outcome.PERMANENT, 550, False)
    assert "No such user" in gone.detail
    assert (busy.outcome, busy.code, busy.connection_lost) == (Outcome.TEMPORARY, 451, False)
    assert fine.outcome is Outcome.SENT
    assert [r.rcpt for r in server.received] == ["fine@example.org"]


def test_a_connection_lost_after_the_body_is_unknown_before_it_temporary(server):
    server.behaviour.drop_after_data = lambda addr: addr == "drop@example.org"
    with SmtpConnection(SmtpTarget.from_url(server.url)) as smtp:
        dropped = smtp.send("news@shop.example", "drop@example.org", MESSAGE)
        after = smtp.send("news@shop.example", "next@example.org", MESSAGE)
    assert dropped.outcome is Outcome.UNKNOWN and dropped.connection_lost
    assert after.outcome is Outcome.SENT  # on a new connection
    assert [r.rcpt for r in server.received] == ["next@example.org"]


def test_an_internationalised_address_goes_with_smtputf8(server):
    message = "Subject: Hei\r\n\r\nHei Åse\r\n".encode()
    with SmtpConnection(SmtpTarget.from_url(server.url)) as smtp:
        result = smtp.send("news@shop.example", "åse@example.org", message, smtputf8=True)
    assert result.outcome is Outcome.SENT
    assert [r.rcpt for r in server.received] == ["åse@example.org"]


def test_a_line_break_in_an_address_is_refused_before_anything_is_sent(server):
    with (
        SmtpConnection(SmtpTarget.from_url(server.url)) as smtp,
        pytest.raises(ValueError, match="line break"),
    ):
        smtp.send("news@shop.example", "ann@example.org\r\nRCPT TO:<eve@evil.example>", MESSAGE)
    assert server.received == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b".", b"\r\n", b"\n", b"a", b"..", b"\r"]), max_size=30))
def test_dot_stuffing_matches_smtplib(parts):
    message = b"".join(parts)
    expected = smtplib._quote_periods(message)  # type: ignore[attr-defined]
    if expected[-2:] != b"\r\n":
        expected += b"\r\n"
    assert _stuffed(message) == expected + b".\r\n"
