"""Secrets at rest (the SMTP URL's password, DKIM private keys): Fernet, keyed from the secret.

The Fernet key is derived from `MAILER_SECRET_KEY` with HKDF-SHA256 under its own label, so it
is never the key that signs cookies and links, and a database dump alone opens nothing.
Rotating the secret key makes sealed values unreadable: `open_` then raises `SealError`, the
environment's values apply again, and the admin page asks for them to be entered anew.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"mailer.settings.sealed.v1"


class SealError(ValueError):
    """Sealed under another secret key, or damaged."""


@functools.lru_cache(maxsize=8)
def _fernet(secret_key: str, info: bytes = _INFO) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret_key: str, value: bytes, info: bytes = _INFO) -> str:
    """`info` keys a purpose of its own: a value sealed for one purpose opens for no other."""
    return _fernet(secret_key, info).encrypt(value).decode("ascii")


def open_(secret_key: str, token: str, info: bytes = _INFO, ttl: int | None = None) -> bytes:
    """`ttl`: refuse values sealed more than this many seconds ago."""
    try:
        return _fernet(secret_key, info).decrypt(token.encode("ascii"), ttl=ttl)
    except (InvalidToken, ValueError, UnicodeEncodeError) as exc:
        raise SealError("sealed under another secret key, expired, or damaged") from exc
