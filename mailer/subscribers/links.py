"""The signed links we put in email. Payloads carry ids only."""

from __future__ import annotations

from collections.abc import Collection

from mailer.tokens import Purpose, Tokens


class Links:
    def __init__(self, tokens: Tokens, base_url: str) -> None:
        self.tokens = tokens
        self.base_url = base_url.rstrip("/")

    def confirm(self, message_id: int) -> str:
        return f"{self.base_url}/confirm/{self.tokens.dumps(Purpose.CONFIRM, {'m': message_id})}"

    def unsubscribe(
        self, subscriber_id: int, topics: Collection[str] | None, message_id: int | None
    ) -> str:
        payload = {"s": subscriber_id, "t": sorted(topics) if topics else None, "m": message_id}
        return f"{self.base_url}/unsubscribe/{self.tokens.dumps(Purpose.UNSUBSCRIBE, payload)}"

    def preferences(self, subscriber_id: int) -> str:
        token = self.tokens.dumps(Purpose.PREFERENCES, {"s": subscriber_id})
        return f"{self.base_url}/preferences/{token}"
