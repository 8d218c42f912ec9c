"""Signed tracking URLs. The click target sits inside the signed token, so the redirect
can only ever go where the campaign linked: no open redirect, no database read per click."""

from __future__ import annotations

from mailer.tokens import MAX_LENGTH, Purpose, Tokens
from mailer.tracking.hits import safe_url

# Longest click token we hand out: under what `Tokens.loads` accepts, and short enough that
# the request line fits common server limits (gunicorn's is 4094 bytes).
CLICK_TOKEN_MAX = min(MAX_LENGTH[Purpose.CLICK], 4000)


class TrackingLinks:
    def __init__(self, tokens: Tokens, base_url: str) -> None:
        self.tokens = tokens
        self.base_url = base_url.rstrip("/")

    def open_pixel(self, delivery_id: int) -> str:
        return f"{self.base_url}/t/o/{self.tokens.dumps(Purpose.OPEN, {'d': delivery_id})}"

    def click(self, delivery_id: int, url: str, link_index: int) -> str:
        """The tracked URL for `url`, or `url` itself when it cannot be tracked: not an
        absolute http(s) URL (mailto:, tel:, anchors) or too long to sign into a link."""
        if safe_url(url) is None:
            return url
        token = self.tokens.dumps(Purpose.CLICK, {"d": delivery_id, "u": url, "i": link_index})
        if len(token) > CLICK_TOKEN_MAX:
            return url
        return f"{self.base_url}/t/c/{token}"

    def view_in_browser(self, delivery_id: int) -> str:
        return f"{self.base_url}/m/{self.tokens.dumps(Purpose.VIEW, {'d': delivery_id})}"
