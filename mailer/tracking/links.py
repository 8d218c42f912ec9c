"""Signed tracking URLs. The click target sits inside the signed token, so the redirect
can only ever go where the campaign linked: no open redirect, no database read per click."""

from __future__ import annotations

from mailer.tokens import MAX_LENGTH, Purpose, Tokens
from mailer.tracking.hits import safe_url

# Longest click token we hand out: under what `Tokens.loads` accepts, and short enough that
# the request line fits common server limits (gunicorn's is 4094 bytes).
CLICK_TOKEN_MAX = min(MAX_LENGTH[Purpose.CLICK], 4000)
# How many URLs' `safe_url` verdicts one TrackingLinks remembers (a campaign signs the same
# few links for every recipient).
_CHECKED_MAX = 1024


class TrackingLinks:
    def __init__(self, tokens: Tokens, base_url: str) -> None:
        self.tokens = tokens
        self.base_url = base_url.rstrip("/")
        self._checked: dict[str, bool] = {}

    def _trackable(self, url: str) -> bool:
        known = self._checked.get(url)
        if known is None:
            known = safe_url(url) is not None
            if len(self._checked) < _CHECKED_MAX:
                self._checked[url] = known
        return known

    def open_pixel(self, delivery_id: int) -> str:
        return f"{self.base_url}/t/o/{self.tokens.dumps(Purpose.OPEN, {'d': delivery_id})}"

    def click(self, delivery_id: int, url: str, link_index: int) -> str:
        """The tracked URL for `url`, or `url` itself when it cannot be tracked: not an
        absolute http(s) URL (mailto:, tel:, anchors) or too long to sign into a link."""
        if not self._trackable(url):
            return url
        token = self.tokens.dumps(Purpose.CLICK, {"d": delivery_id, "u": url, "i": link_index})
        if len(token) > CLICK_TOKEN_MAX:
            return url
        return f"{self.base_url}/t/c/{token}"

    def view_in_browser(self, delivery_id: int) -> str:
        return f"{self.base_url}/m/{self.tokens.dumps(Purpose.VIEW, {'d': delivery_id})}"
