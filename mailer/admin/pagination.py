"""The page a list in the admin is on, read from the `page` query argument: anything that is
not a page number is the first page, never an error."""

from __future__ import annotations

from flask import request

MAX_PAGE = 1_000_000


def page_arg() -> int:
    raw = request.args.get("page", "1")
    page = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 8 else 1
    return min(max(page, 1), MAX_PAGE)
