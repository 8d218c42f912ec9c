"""DKIM signing (RFC 6376): rsa-sha256, relaxed/relaxed, no `l=`.

dkimpy's own `dkim.sign` does the RSA step in pure Python (about 17 ms a message), too slow for
a campaign. We keep dkimpy's folding, canonicalise with a few whole-buffer passes, and do the
RSA signature with `cryptography` (OpenSSL), with the key parsed once per process.

Campaign messages are signed from their parts (`signature`): the head as bytes and the body
as a list of line-aligned chunks, most of them the same in every message of the campaign, so
their canonical forms are computed once (`BodyCanon`) and each message only canonicalises
its personal chunks. dkimpy's verifier is what the tests check our signatures with.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from dkim import fold, rfc822_parse
from dkim.canonicalization import correct_empty_body, strip_trailing_lines

# From and the one-click headers must be covered (RFC 8058 section 4); the rest when present.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-id",
    b"feedback-id",
)


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_key: bytes

    @classmethod
    def load(cls, domain: str, selector: str, key_path: str, pem: bytes = b"") -> DkimKey | None:
        """From the file at `key_path`, else from `pem` (a key generated in the admin)."""
        if not (domain and selector and (key_path or pem)):
            return None
        key = cls(domain, selector, Path(key_path).read_bytes() if key_path else pem)
        _rsa_key(key.private_key)  # a broken key fails at start, not at the first message
        return key


@functools.lru_cache(maxsize=8)
def _rsa_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the DKIM key must be an RSA private key (PEM)")
    return key


def _headers_and_body(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    head, sep, body = message.partition(b"\r\n\r\n")
    if sep and b"\n" not in head.replace(b"\r\n", b""):
        # The usual case, CRLF messages: parse only the header block.
        headers, _ = rfc822_parse(head + b"\r\n\r\n")
    else:
        headers, body = rfc822_parse(message)
    return [(name, value) for name, value in headers], body


def header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) of each header field in a CRLF header block we wrote (no blank line at
    its end), values as on the wire (leading space, folding kept): what dkimpy's parser gives,
    but for the CRLF it adds at each value's end, which canonicalisation removes anyway."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        else:
            name, _sep, value = line.partition(b":")
            fields.append((name, value))
    return fields


_WSP_RUN = re.compile(rb"[\t ]+")


def _relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2, as dkimpy's `Relaxed.canonicalize_headers` does it."""
    return (
        name.lower().rstrip()
        + b":"
        + _WSP_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip()
        + b"\r\n"
    )


def relaxed_lines(data: bytes) -> bytes:
    """RFC 6376 3.4.4 without its end-of-body rule: runs of WSP become one space, WSP at line
    ends goes. Whole lines canonicalise independently, so line-aligned chunks can be done
    one by one. Byte for byte what dkimpy's regex substitutions give (3 ms on a 50 KB HTML
    body full of indentation), in a few whole-buffer `replace` passes instead."""
    data = data.replace(b"\t", b" ")
    while b"  " in data:
        data = data.replace(b"    ", b" ").replace(b"  ", b" ")
    return data.replace(b" \r\n", b"\r\n")


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4 relaxed body canonicalisation, byte for byte what dkimpy's
    `Relaxed.canonicalize_body` gives."""
    return correct_empty_body(strip_trailing_lines(relaxed_lines(body)))


class BodyCanon:
    """Relaxed canonical forms of body chunks that recur in every message (a campaign's fixed
    text, its MIME framing), computed once. Only whole-line chunks (ending in CRLF) qualify."""

    def __init__(self, chunks: Iterable[bytes] = ()) -> None:
        self.known = {c: relaxed_lines(c) for c in chunks if c.endswith(b"\r\n")}

    def body(self, chunks: list[bytes]) -> bytes:
        """The canonical body of b"".join(chunks)."""
        known = self.known
        out = []
        for chunk in chunks:
            if not chunk:
                continue
            if not chunk.endswith(b"\r\n"):  # not line-aligned: do it the slow way
                return relaxed_body(b"".join(chunks))
            canonical = known.get(chunk)
            out.append(canonical if canonical is not None else relaxed_lines(chunk))
        return correct_empty_body(strip_trailing_lines(b"".join(out)))


def _signature_header(
    headers: list[tuple[bytes, bytes]], canonical_body: bytes, key: DkimKey
) -> bytes:
    """The DKIM-Signature header field, CRLF-ended, for these headers and canonical body."""
    last = {name.lower(): (name, value) for name, value in headers}
    include = [h for h in SIGNED_HEADERS if h in last]
    body_hash = base64.b64encode(hashlib.sha256(canonical_body).digest())
    fields = [
        (b"v", b"1"),
        (b"a", b"rsa-sha256"),
        (b"c", b"relaxed/relaxed"),
        (b"d", key.domain.encode("ascii")),
        (b"s", key.selector.encode("ascii")),
        (b"t", str(int(time.time())).encode("ascii")),
        (b"h", b" : ".join(include)),
        (b"bh", body_hash),
        (b"b", b""),
    ]
    # Folded with b= empty and last: the verifier deletes b='s value with its folding, which
    # leaves exactly this text to hash. Each signed header is its last occurrence (the one a
    # verifier picks first); SIGNED_HEADERS names each header once.
    unsigned = fold(b"; ".join(k + b"=" + v for k, v in fields), namelen=len(b"DKIM-Signature"))
    data = b"".join(_relaxed_header(*last[h]) for h in include)
    data += _relaxed_header(b"DKIM-Signature", b" " + unsigned)[:-2]
    signature = base64.b64encode(
        _rsa_key(key.private_key).sign(data, padding.PKCS1v15(), hashes.SHA256())
    )
    chunks = [signature[i : i + 72] for i in range(0, len(signature), 72)]
    return b"DKIM-Signature: " + unsigned + b"\r\n " + b"\r\n ".join(chunks) + b"\r\n"


def sign(message: bytes, key: DkimKey) -> bytes:
    """`message` (CRLF line endings) with a DKIM-Signature header prepended."""
    headers, body = _headers_and_body(message)
    return _signature_header(headers, relaxed_body(body), key) + message


def signature(head: bytes, body: list[bytes], key: DkimKey, canon: BodyCanon) -> bytes:
    """The DKIM-Signature header field (CRLF-ended) for the message
    `head + CRLF CRLF + b"".join(body)`; `head` is the CRLF header block without its final
    line break."""
    return _signature_header(header_fields(head), canon.body(body), key)
