"""DKIM keys generated in the admin: RSA 2048 (RFC 8301), sealed at rest, and the DNS record
to publish for each.

The newest key signs campaign and system mail unless the environment configures a key
(`MAILER_DKIM_*`); see `mailer.settings.store.effective`. Rotation: generate a key under a
new selector, publish its record, and delete the old key once its record is no longer needed.
We cannot check the record from here: the server may well have no way out to the internet.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.settings import sealing, store
from mailer.settings.models import StoredDkimKey

KEY_BITS = 2048
# A TXT record is a list of strings of at most 255 bytes each (RFC 1035 3.3.14).
DNS_STRING = 255
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
HISTORY_KEY = "dkim"


@dataclass(frozen=True)
class DnsRecord:
    name: str  # <selector>._domainkey.<domain>
    value: str  # v=DKIM1; k=rsa; p=...
    strings: tuple[str, ...]  # value split into <= 255-character strings

    @property
    def zone(self) -> str:
        """The record as a zone-file line, each string quoted."""
        quoted = " ".join(f'"{s}"' for s in self.strings)
        return f"{self.name}. IN TXT ( {quoted} )"


def _labels(value: str, field: str, *, min_labels: int, max_length: int) -> str:
    text = value.strip().rstrip(".").lower()
    if not text:
        raise store.SettingsError({field: ["this field is required"]})
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise store.SettingsError({field: ["not a valid DNS name"]}) from None
    labels = text.split(".")
    if len(text) > max_length or len(labels) < min_labels:
        hint = "a domain such as example.org" if min_labels > 1 else "letters, digits, hyphens"
        raise store.SettingsError({field: [f"not a valid DNS name ({hint})"]})
    if not all(_LABEL.match(label) for label in labels):
        raise store.SettingsError(
            {field: ["use letters, digits and hyphens between the dots (no leading hyphen)"]}
        )
    return text


def check(domain: str, selector: str) -> tuple[str, str]:
    """The domain and selector in their normal form; raises `SettingsError` naming the field."""
    errors = {}
    try:
        domain = _labels(domain, "domain", min_labels=2, max_length=253)
    except store.SettingsError as exc:
        errors.update(exc.messages)
    try:
        selector = _labels(selector, "selector", min_labels=1, max_length=63)
    except store.SettingsError as exc:
        errors.update(exc.messages)
    if errors:
        raise store.SettingsError(errors)
    if len(f"{selector}._domainkey.{domain}") > 253:
        raise store.SettingsError({"selector": ["the record name would be too long"]})
    return domain, selector


def generate(
    session: Session,
    secret_key: str,
    domain: str,
    selector: str,
    *,
    user_id: int | None,
    user_email: str = "",
) -> StoredDkimKey:
    """Generate a key for `domain` and `selector`; it signs from now on. Commits.

    Raises `SettingsError` for a bad domain or selector. Rerunning makes another key (the
    newest signs); nothing else changes."""
    domain, selector = check(domain, selector)
    taken = select(StoredDkimKey.id).where(
        StoredDkimKey.domain == domain, StoredDkimKey.selector == selector
    )
    if session.scalar(taken) is not None:
        # Same record name: publishing the new key would break mail signed with the old one.
        raise store.SettingsError(
            {"selector": ["this domain has a key with this selector already: choose a new one"]}
        )
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    before = current(session)
    row = StoredDkimKey(
        domain=domain,
        selector=selector,
        public_key=base64.b64encode(der).decode("ascii"),
        private_key_sealed=sealing.seal(secret_key, pem),
        created_by_id=user_id,
    )
    session.add(row)
    store.record(
        session,
        HISTORY_KEY,
        dns_record(before).name if before else None,
        f"{dns_record(row).name} (new key)",
        user_id=user_id,
        user_email=user_email,
    )
    session.commit()
    store.invalidate()
    return row


def current(session: Session) -> StoredDkimKey | None:
    """The key that signs (when the environment configures none): the newest. Read-only."""
    return session.scalar(select(StoredDkimKey).order_by(StoredDkimKey.id.desc()).limit(1))


def listing(session: Session, limit: int = 20) -> tuple[list[StoredDkimKey], int]:
    """The newest keys first, and how many there are. Read-only."""
    rows = session.scalars(
        select(StoredDkimKey).order_by(StoredDkimKey.id.desc()).limit(limit)
    ).all()
    return list(rows), session.scalar(select(func.count()).select_from(StoredDkimKey)) or 0


def delete(
    session: Session, key_id: int, *, user_id: int | None, user_email: str = ""
) -> StoredDkimKey:
    """Delete an older key. Commits. LookupError if there is no such key; `SettingsError` for
    the key that signs now (generate its successor first)."""
    row = session.get(StoredDkimKey, key_id)
    if row is None:
        raise LookupError(key_id)
    newest = current(session)
    if newest is not None and newest.id == row.id:
        raise store.SettingsError(
            {"key": ["this key signs now: generate a new one first, then delete this one"]}
        )
    name = dns_record(row).name
    session.delete(row)
    store.record(
        session,
        HISTORY_KEY,
        f"{name} (key {row.id})",
        None,
        user_id=user_id,
        user_email=user_email,
    )
    session.commit()
    store.invalidate()
    return row


def dns_record(row: StoredDkimKey) -> DnsRecord:
    """The TXT record that publishes `row`'s public key."""
    value = f"v=DKIM1; k=rsa; p={row.public_key}"
    strings = tuple(value[i : i + DNS_STRING] for i in range(0, len(value), DNS_STRING))
    return DnsRecord(f"{row.selector}._domainkey.{row.domain}", value, strings)


def misaligned(domain: str, addresses: list[str]) -> list[str]:
    """From addresses whose domain does not align with DKIM `d=domain` (DMARC relaxed
    alignment, approximated: the same domain or a subdomain of it, either way round)."""
    out = []
    for address in addresses:
        host = address.rpartition("@")[2].lower()
        if not (host == domain or host.endswith("." + domain) or domain.endswith("." + host)):
            out.append(address)
    return out
