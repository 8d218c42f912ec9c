"""DKIM signing (RFC 6376) with dkimpy: rsa-sha256, relaxed/relaxed, no `l=`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dkim

# From and the one-click headers must be covered (RFC 8058 section 4).
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-id",
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
        return cls(domain, selector, Path(key_path).read_bytes())


def sign(message: bytes, key: DkimKey) -> bytes:
    present = {
        line.split(b":", 1)[0].strip().lower()
        for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if b":" in line and not line[:1].isspace()
    }
    headers = [h for h in SIGNED_HEADERS if h in present]
    signature = dkim.sign(
        message,
        key.selector.encode(),
        key.domain.encode(),
        key.private_key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=headers,
    )
    return signature + message
