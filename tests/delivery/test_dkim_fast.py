"""DKIM signed through `cryptography`: dkimpy's own verifier accepts what we sign, whatever
the message holds (non-ASCII words, long lines, odd whitespace), and rejects tampering."""

from __future__ import annotations

import base64
import subprocess

import dkim
import pytest
from dkim.canonicalization import Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.delivery import dkim as our_dkim
from mailer.delivery.mime import Envelope, encode


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim-fast")
    private = d / "private.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True
    )
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    key = our_dkim.DkimKey.load("example.org", "s2026", str(private))
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def _verifies(message: bytes, record: bytes) -> bool:
    def lookup(name, timeout=5):
        return record if name == b"s2026._domainkey.example.org." else None

    return dkim.verify(message, dnsfunc=lookup)


def _message(subject: str, name: str, text: str, html: str) -> bytes:
    envelope = Envelope(
        sender="Nyhetsbrev Ødegård <news@example.org>",
        to_email="ase@example.no",
        to_name=name,
        subject=subject,
        message_id="c1.d2.abc@example.org",
        unsubscribe_url="https://example.org/unsubscribe/" + "t" * 180,
        list_id='"Nyheter" <news.list-id.example.org>',
        extra_headers={"Feedback-ID": "1:news:mailer:example.org"},
    )
    return encode(envelope, text, html)


@pytest.mark.parametrize(
    ("subject", "name", "text"),
    [
        ("Hello", "Ann", "plain body\n"),
        ("Sommertilbud på ærfugldyner — nå 20 % rabatt", "Åse Ødegård", "Hei Åse!\n"),
        ("Ünïcödé " * 30, "名前 " * 20, "x" * 5000 + "\n"),  # long header and body lines
        ("Tabs\tand   spaces", "Ann", "trailing spaces   \n\tindented\t\n\n\n\n"),
    ],
)
def test_signatures_verify_with_dkimpy(keypair, subject, name, text):
    key, record = keypair
    signed = our_dkim.sign(_message(subject, name, text, f"<p>{text}</p>"), key)
    assert _verifies(signed, record)
    header = signed.split(b"\r\n\r\n")[0].decode()
    assert "a=rsa-sha256" in header and "c=relaxed/relaxed" in header and " l=" not in header
    h_tag = header.split("; h=")[1].split(";")[0].replace("\r\n", "").replace(" ", "")
    assert {"from", "to", "subject", "date", "message-id"} <= set(h_tag.split(":"))
    assert {"list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id"} <= set(
        h_tag.split(":")
    )


def test_tampering_breaks_the_signature_and_added_trace_headers_do_not(keypair):
    key, record = keypair
    signed = our_dkim.sign(_message("Offer", "Ann", "Price: 10 EUR\n", "<p>10 EUR</p>"), key)
    assert _verifies(b"Received: from relay.example by mx.example\r\n" + signed, record)
    assert not _verifies(signed.replace(b"Subject: Offer", b"Subject: 0ffer"), record)
    assert not _verifies(signed.replace(b"10 EUR", b"99 EUR"), record)
    # Swapping the one-click URL is caught: List-Unsubscribe is signed.
    assert not _verifies(signed.replace(b"/unsubscribe/tttt", b"/unsubscribe/evil"), record)


def test_a_broken_key_fails_when_loaded_not_on_the_first_message(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError):
        our_dkim.DkimKey.load("example.org", "s1", str(bad))


def test_no_key_configured_means_no_signing():
    assert our_dkim.DkimKey.load("", "s1", "/nonexistent") is None


_BODY_BYTES = st.lists(
    st.sampled_from([b" ", b"\t", b"\r\n", b"a", b"\r", b"\n", b"  ", b"b c", b"=20"]),
    max_size=40,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(_BODY_BYTES)
def test_body_canonicalisation_matches_dkimpy(body):
    assert our_dkim.relaxed_body(body) == Relaxed.canonicalize_body(body)


_CHUNKS = st.lists(
    st.lists(
        st.sampled_from([b" ", b"\t", b"a", b"b c", b"=20", b"  x  ", b"\r\n"]), max_size=12
    ).map(b"".join),
    max_size=8,
)


@settings(max_examples=500, deadline=None)
@given(_CHUNKS, st.data())
def test_a_body_canonicalised_chunk_by_chunk_is_the_whole_body_canonicalised(chunks, data):
    # Some chunks are "known" (canonicalised ahead, as a campaign's fixed text is).
    known = [c for c in chunks if data.draw(st.booleans())]
    canon = our_dkim.BodyCanon(known)
    assert canon.body(chunks) == Relaxed.canonicalize_body(b"".join(chunks))


def test_a_message_signed_from_its_parts_verifies(keypair):
    key, record = keypair
    message = _message("Sommertilbud på dyner", "Åse Ødegård", "Hei   Åse!\t\n", "<p>x</p>")
    head, body = message.split(b"\r\n\r\n", 1)
    lines = body.split(b"\r\n")
    chunks = [line + b"\r\n" for line in lines[:-1]] + [lines[-1]]
    canon = our_dkim.BodyCanon(chunks[: len(chunks) // 2])
    signed = our_dkim.signature(head, chunks, key, canon) + message
    assert _verifies(signed, record)
    for part, forged in ((b"news@example.org", b"news@examp1e.org"), (b"<p>x", b"<p>y")):
        assert part in signed
        assert not _verifies(signed.replace(part, forged), record)
