"""Signed tracking URLs. The click target sits inside the signed token, so the redirect
can only ever go where the campaign linked: no open redirect, no database read per click."""

from __future__ import annotations

from mailer.tokens import Purpose, Tokens


class TrackingLinks:
    def __init__(self, tokens: Tokens, base_url: str) -> None:
        self.tokens = tokens
        self.base_url = base_url.rstrip("/")

    def open_pixel(self, delivery_id: int) -> str:
        return f"{self.base_url}/t/o/{self.tokens.dumps(Purpose.OPEN, {'d': delivery_id})}"

    def click(self, delivery_id: int, url: str, link_index: int) -> str:
        token = self.tokens.dumps(Purpose.CLICK, {"d": delivery_id, "u": url, "i": link_index})
        return f"{self.base_url}/t/c/{token}"

    def view_in_browser(self, delivery_id: int) -> str:
        return f"{self.base_url}/m/{self.tokens.dumps(Purpose.VIEW, {'d': delivery_id})}"
