"""Message-IDs of campaign messages: they name the campaign and delivery, with a keyed MAC so a
forged bounce or complaint cannot point at someone else's delivery."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

_PATTERN = re.compile(r"<?c(\d+)\.d(\d+)\.([0-9a-f]{16})@[^>\s]+>?")


@dataclass(frozen=True)
class MessageRef:
    campaign_id: int
    delivery_id: int


def _mac(secret: str, campaign_id: int, delivery_id: int) -> str:
    msg = f"mailer.message-id.v1:{campaign_id}.{delivery_id}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:16]


def message_id(secret: str, campaign_id: int, delivery_id: int, domain: str) -> str:
    """Without angle brackets, as `mime.Envelope.message_id` takes it."""
    return f"c{campaign_id}.d{delivery_id}.{_mac(secret, campaign_id, delivery_id)}@{domain}"


def parse(secret: str, value: str) -> MessageRef | None:
    """The delivery a Message-ID (or any text holding one) names, if its MAC is ours."""
    for match in _PATTERN.finditer(value or ""):
        cid, did, mac = int(match.group(1)), int(match.group(2)), match.group(3)
        if hmac.compare_digest(mac, _mac(secret, cid, did)):
            return MessageRef(cid, did)
    return None
