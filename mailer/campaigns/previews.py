"""Live previews of unsaved templates: the rendered HTML, kept in Redis for a few minutes.

A marketer's editor sends the source as they type; the HTML it renders to is full of inline
styles and must be shown from its own URL under its own CSP (never inside our pages), so it
is parked here under a slot the editor page chose, one per open editor, and the preview
frames fetch it from there. Each new render overwrites the slot, so typing does not pile up
copies. Slots are namespaced by the staff user's id: one user cannot read another's preview.

Nothing here touches the database. Storing twice overwrites; the slot expires on its own.
"""

from __future__ import annotations

import hashlib
import re
import secrets

import redis

TTL_SECONDS = 30 * 60
_SLOT = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_slot() -> str:
    """A fresh, unguessable slot name for one editor page."""
    return secrets.token_urlsafe(18)


def valid_slot(slot: str) -> bool:
    return bool(_SLOT.match(slot or ""))


def _key(owner_id: int, slot: str) -> str:
    return f"mailer:template-preview:{owner_id}:{slot}"


def store(connection: redis.Redis, owner_id: int, slot: str, html: str) -> None:
    """Keep `html` as `owner_id`'s preview in `slot` (ValueError for a malformed slot)."""
    if not valid_slot(slot):
        raise ValueError("malformed preview slot")
    connection.set(_key(owner_id, slot), html.encode("utf-8"), ex=TTL_SECONDS)


def load(connection: redis.Redis, owner_id: int, slot: str) -> str | None:
    """The preview `owner_id` last stored in `slot`, or None (expired, never stored, or not
    theirs)."""
    if not valid_slot(slot):
        return None
    data = connection.get(_key(owner_id, slot))
    return None if data is None else bytes(data).decode("utf-8")  # type: ignore[arg-type]


def version(*parts: str) -> str:
    """A short fingerprint of what was rendered, so a frame's URL changes with its content."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:12]


def first_look(connection: redis.Redis, owner_id: int, slot: str, subscriber_id: int) -> bool:
    """True the first time `owner_id` previews as `subscriber_id` in this editor slot: the
    moment to record the access (not once per keystroke)."""
    key = f"{_key(owner_id, slot)}:seen:{subscriber_id}"
    return bool(connection.set(key, b"1", nx=True, ex=TTL_SECONDS))
