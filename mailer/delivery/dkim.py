"""DKIM signing (RFC 6376): rsa-sha256, relaxed/relaxed, no `l=`.

dkimpy's own `dkim.sign` does the RSA step in pure Python (about 17 ms a message), too slow for
a campaign. We keep dkimpy's parsing, header selection, canonicalisation and folding, and do
only the RSA signature with `cryptography` (OpenSSL), with the key parsed once per process.
dkimpy's verifier is what the tests check our signatures with.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from dkim import fold, rfc822_parse, select_headers
from dkim.canonicalization import Relaxed, correct_empty_body, strip_trailing_lines

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
    def load(cls, domain: str, selector: str, key_path: str) -> DkimKey | None:
        if not (domain and selector and key_path):
            return None
        key = cls(domain, selector, Path(key_path).read_bytes())
        _rsa_key(key.private_key)  # a broken key fails at start, not at the first message
        return key


@functools.lru_cache(maxsize=8)
def _rsa_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the DKIM key must be an RSA private key (PEM)")
    return key


def _headers_and_body(message: bytes) -> tuple[list[list[bytes]], bytes]:
    head, sep, body = message.partition(b"\r\n\r\n")
    if sep and b"\n" not in head.replace(b"\r\n", b""):
        # The usual case, our own CRLF messages: parse only the header block.
        headers, _ = rfc822_parse(head + b"\r\n\r\n")
        return headers, body
    return rfc822_parse(message)


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4 relaxed body canonicalisation, byte for byte what dkimpy's
    `Relaxed.canonicalize_body` gives, without its per-match regex substitutions (3 ms on a
    50 KB HTML body full of indentation): a few whole-buffer `replace` passes instead."""
    body = body.replace(b"\t", b" ")
    while b"  " in body:
        body = body.replace(b"    ", b" ").replace(b"  ", b" ")
    body = body.replace(b" \r\n", b"\r\n")
    return correct_empty_body(strip_trailing_lines(body))


def sign(message: bytes, key: DkimKey) -> bytes:
    """`message` (CRLF line endings) with a DKIM-Signature header prepended."""
    headers, body = _headers_and_body(message)
    present = {name.lower() for name, _value in headers}
    include = [h for h in SIGNED_HEADERS if h in present]
    body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
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
    # leaves exactly this text to hash.
    unsigned = fold(b"; ".join(k + b"=" + v for k, v in fields), namelen=len(b"DKIM-Signature"))
    data = b"".join(
        name + b":" + value
        for name, value in Relaxed.canonicalize_headers(select_headers(headers, include))
    )
    ((name, value),) = Relaxed.canonicalize_headers([(b"DKIM-Signature", b" " + unsigned)])
    data += name + b":" + value.rstrip()
    signature = base64.b64encode(
        _rsa_key(key.private_key).sign(data, padding.PKCS1v15(), hashes.SHA256())
    )
    chunks = [signature[i : i + 72] for i in range(0, len(signature), 72)]
    return b"DKIM-Signature: " + unsigned + b"\r\n " + b"\r\n ".join(chunks) + b"\r\n" + message
