"""Campaign wire format pieces: encoded words any mail reader decodes back to what was written,
within the line length, and quoted-printable chunks that join into the same body as a
whole-body encoding would decode to."""

from __future__ import annotations

import quopri
from email import policy
from email.header import decode_header, make_header
from email.parser import BytesParser

from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.delivery import wire

_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=200,
) | st.sampled_from(["Åse Ødegård", "名前 " * 30, "=?utf-8?q?Eve=0D=0ABcc:_x?=", "🎉" * 40])


def _parse(head: str) -> object:
    return BytesParser(policy=policy.default).parsebytes((head + "\r\n\r\n").encode("ascii"))


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_subjects_decode_to_what_was_written_within_the_line_length(subject):
    subject = " ".join(subject.split())
    line = wire.unstructured("Subject", subject)
    assert all(len(part) <= 78 for part in line.split("\r\n"))
    msg = _parse(line)
    assert list(msg.keys()) == ["Subject"]
    assert " ".join(str(msg["Subject"]).split()) == subject


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_display_names_decode_to_what_was_written(name):
    line = "To: " + wire.mailbox(name, "ann@example.org", "To")
    msg = _parse(line)
    assert list(msg.keys()) == ["To"]
    (address,) = msg["To"].addresses
    assert address.addr_spec == "ann@example.org"
    # Decoded as RFC 2047 says (Python's address parser puts a space between adjacent
    # encoded words, which mail readers do not).
    phrase = wire.phrase(name, "To").replace("\r\n", "")
    if phrase.startswith("=?"):
        decoded = str(make_header(decode_header(phrase)))
    else:
        decoded = address.display_name
    assert decoded == " ".join(name.split())


_PIECES = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)
    | st.sampled_from(['<td>\n  <p style="x">', " " * 80, "x" * 200, "é" * 40, "\r\n", "="]),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(_PIECES, _PIECES)
def test_quoted_printable_chunks_are_whole_lines_and_decode_to_the_text(learned, pieces):
    qp = wire.QuotedPrintable()
    qp.learn(learned)
    rendered = learned + pieces
    chunks = qp.chunks(rendered)
    assert all(chunk.endswith(b"\r\n") for chunk in chunks if chunk)
    assert b"".join(chunks) == qp.encode(rendered)
    body = b"".join(chunks)
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    text = "".join(rendered).replace("\r\n", "\n").replace("\r", "\n")
    assert quopri.decodestring(body.replace(b"\r\n", b"\n")).decode("utf-8") == text


def test_the_framing_makes_the_same_message_as_assemble():
    mime = wire.Alternative("=_mailer_abc")
    headers = ["From: a@example.org", "Subject: Hi"]
    text, html = [b"Hello=\r\n", b" Ann\r\n"], [b"<p>Hello</p>\r\n"]
    message = mime.head(headers) + b"\r\n\r\n" + b"".join(mime.body(text, html))
    assert message == wire.assemble(headers, "=_mailer_abc", b"".join(text), b"".join(html))
