"""What goes on the wire: readable names and addresses, no smuggled headers."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from mailer.delivery.mime import Envelope, encode
from mailer.delivery.wire import HeaderInjection


def _envelope(**kw):
    base = dict(
        sender="News <news@example.org>",
        to_email="ann@example.com",
        to_name="Ann",
        subject="Hello",
        message_id="abc@example.org",
        unsubscribe_url="https://example.org/unsubscribe/" + "x" * 150,
    )
    return Envelope(**{**base, **kw})


def _parse(data: bytes):
    return BytesParser(policy=policy.default).parsebytes(data)


def test_idn_domain_goes_out_as_ascii_and_names_as_encoded_words():
    data = encode(
        _envelope(to_email="åse@exämple.com".replace("å", "a"), to_name="Åse Ødegård"),
        "t",
        "<p>h</p>",
    )
    assert data.isascii()
    msg = _parse(data)
    (to,) = msg["To"].addresses
    assert to.addr_spec == "ase@xn--exmple-cua.com" and to.display_name == "Åse Ødegård"
    # The long unsubscribe URL stays one angle-bracketed URL, not encoded words.
    assert str(msg["List-Unsubscribe"]) == "<https://example.org/unsubscribe/" + "x" * 150 + ">"


def test_body_lines_stay_within_76_characters_and_decode_to_the_original():
    """RFC 2045 caps quoted-printable lines at 76 characters; SpamAssassin scores longer
    ones (MIME_QP_LONG_LINE). Headers still keep the long unsubscribe URL whole."""
    text = "Bekreft påmeldingen din: " + "https://example.org/confirm/" + "y" * 180 + "\n" * 2
    html = '<p style="color:#333333">' + "Ærlig talt, " * 40 + "</p>"
    data = encode(_envelope(), text, html)
    head, _, body = data.partition(b"\r\n\r\n")
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert b"https://example.org/unsubscribe/" + b"x" * 150 + b">" in head
    msg = _parse(data)
    decoded = {
        kind: msg.get_body((kind,)).get_content().replace("\r\n", "\n")
        for kind in ("plain", "html")
    }
    assert decoded["plain"] == text
    assert decoded["html"].rstrip("\n") == html


def test_non_ascii_local_part_uses_smtputf8():
    data = encode(_envelope(to_email="åse@example.no"), "t", "<p>h</p>")
    assert "åse@example.no".encode() in data


@pytest.mark.parametrize("field", ["to_name", "subject", "sender"])
def test_line_breaks_are_refused(field):
    with pytest.raises(HeaderInjection):
        encode(_envelope(**{field: "Eve\r\nBcc: x@evil.example"}), "t", "<p>h</p>")


def test_encoded_word_that_decodes_to_a_line_break_cannot_add_headers():
    name = "=?utf-8?q?Eve=0D=0ABcc:_x@evil.example?="
    msg = _parse(encode(_envelope(to_name=name), "t", "<p>h</p>"))
    assert "Bcc" not in msg
    # Encoded as a whole, so a reader shows the text as typed, not what it would decode to.
    assert msg["To"].addresses[0].display_name == name


@pytest.mark.parametrize("name", ["X-Ok: 1\r\nBcc", "Bcc: x@evil.example\r\nX", "X Two", ""])
def test_an_extra_header_name_must_be_a_header_name(name):
    with pytest.raises(HeaderInjection):
        encode(_envelope(extra_headers={name: "1"}), "t", "<p>h</p>")


def test_the_headers_a_reader_and_a_mail_client_need():
    msg = _parse(
        encode(
            _envelope(sender="Nyheter Ærø <nyheter@exämple.no>", list_id="news.example.org"),
            "t",
            "<p>h</p>",
        )
    )
    (sender,) = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Nyheter Ærø", "nyheter@xn--exmple-cua.no")
    assert msg["Message-ID"] == "<abc@example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == "news.example.org"
    assert msg["Date"].datetime is not None and msg["MIME-Version"] == "1.0"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
