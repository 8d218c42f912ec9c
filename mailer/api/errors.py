"""API errors in the app's one shape, and flattening of marshmallow's nested messages."""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import HTTPException

# webargs reports where a field was read from; clients only need the field.
_LOCATIONS = {"json", "query", "form", "files", "headers", "view_args", "json_or_form"}


class ApiError(HTTPException):
    """Raise with a status and `{field: [message]}`; `mailer.web` renders it."""

    def __init__(
        self, code: int, errors: dict[str, list[str]], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__()
        self.code = code
        self.errors = errors
        self.extra_headers = headers or {}

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), *self.extra_headers.items()]


def flatten(messages: Any, prefix: str = "", top: bool = True) -> dict[str, list[str]]:
    """`{"json": {"rules": {"all": {0: {"op": ["bad"]}}}}}` → `{"rules.all.0.op": ["bad"]}`."""
    if not isinstance(messages, dict | list):  # a message (str, or a lazy translation)
        return {prefix or "request": [str(messages)]}
    if isinstance(messages, list):
        if not any(isinstance(m, dict | list) for m in messages):
            return {prefix or "request": [str(m) for m in messages]}
        out: dict[str, list[str]] = {}
        for item in messages:
            for key, value in flatten(item, prefix, top=False).items():
                out.setdefault(key, []).extend(value)
        return out
    out = {}
    for key, value in dict(messages).items():
        key = str(key)
        if top and key in _LOCATIONS:
            name = ""
        elif key == "_schema":
            name = prefix
        else:
            name = f"{prefix}.{key}" if prefix else key
        for field, msgs in flatten(value, name, top=False).items():
            out.setdefault(field, []).extend(msgs)
    return out
