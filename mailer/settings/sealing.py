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


@functools.lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret_key: str, value: bytes) -> str:
    return _fernet(secret_key).encrypt(value).decode("ascii")


def open_(secret_key: str, token: str) -> bytes:
    try:
        return _fernet(secret_key).decrypt(token.encode("ascii"))
    except (InvalidToken, ValueError, UnicodeEncodeError) as exc:
        raise SealError("sealed under another secret key, or damaged") from exc
