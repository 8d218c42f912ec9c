"""DKIM: what we sign verifies, covers From and the one-click headers, survives the trip."""

from __future__ import annotations

import base64
import subprocess

import dkim
import pytest

from mailer.delivery import dkim as our_dkim
from mailer.delivery.mime import Envelope, encode
from mailer.delivery.sender import Sender


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim")
    private = d / "private.pem"
    subprocess.run(
        ["openssl", "genrsa", "-traditional", "-out", str(private), "2048"],
        check=True,
        capture_output=True,
    )
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    return private, record


def _dns(record):
    def lookup(name, timeout=5):
        return record if name == b"mail2026._domainkey.example.org." else None

    return lookup


def _envelope():
    return Envelope(
        sender="News <news@example.org>",
        to_email="ann@example.com",
        to_name="Ann",
        subject="Hello",
        message_id="abc@example.org",
        unsubscribe_url="https://example.org/unsubscribe/tok",
    )


def test_signature_verifies_and_covers_unsubscribe_headers(keypair):
    private, record = keypair
    key = our_dkim.DkimKey("example.org", "mail2026", private.read_bytes())
    signed = our_dkim.sign(encode(_envelope(), "text", "<p>html</p>"), key)
    header = signed.split(b"\r\n\r\n")[0].decode()
    assert "a=rsa-sha256" in header and "c=relaxed/relaxed" in header and " l=" not in header
    h_tag = header.split("h=")[1].split(";")[0].replace("\r\n", "").replace(" ", "")
    assert {"from", "list-unsubscribe", "list-unsubscribe-post"} <= set(h_tag.split(":"))
    assert dkim.verify(signed, dnsfunc=_dns(record))
    # Tampering with a signed header breaks it.
    assert not dkim.verify(
        signed.replace(b"Subject: Hello", b"Subject: Hi!!!"), dnsfunc=_dns(record)
    )


def test_signed_mail_still_verifies_after_smtp(keypair, make_settings, inbox):
    private, record = keypair
    settings = make_settings(
        MAILER_DKIM_DOMAIN="example.org",
        MAILER_DKIM_SELECTOR="mail2026",
        MAILER_DKIM_PRIVATE_KEY=str(private),
    )
    Sender(settings).send(_envelope(), "text body", "<p>html body</p>")
    raw = (next((inbox.path / "new").iterdir())).read_bytes()
    # The sink prepends its own trace headers, as any MTA would: the signature must survive.
    assert dkim.verify(
        raw.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"), dnsfunc=_dns(record)
    )
