"""An address as the wire wants it: ASCII (IDNA domain) where possible, SMTPUTF8 only if not."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


def wire_address(address: str) -> tuple[str, bool]:
    """The address to put in the envelope and headers, and whether SMTPUTF8 is needed.

    `ann@exämple.com` goes out as `ann@xn--exmple-cua.com` with no extension needed; only a
    non-ASCII local part (`åse@example.no`) needs SMTPUTF8 (RFC 6531/6532).
    """
    try:
        info = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return address, not address.isascii()
    if info.ascii_email:
        return info.ascii_email, False
    return info.normalized, True
