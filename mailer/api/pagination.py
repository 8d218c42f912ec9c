"""Paginated lists in the API: the query arguments every list takes, and the envelope it
answers with."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

MAX_PER_PAGE = 200


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PER_PAGE))


class Page(Schema):
    """The envelope of every paginated list: the items, and where they sit in the whole."""

    total = fields.Integer(metadata={"description": "items matching, on all pages"})
    page = fields.Integer()
    per_page = fields.Integer()


def page_of(items: list[Any], total: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"items": items, "total": total, "page": args["page"], "per_page": args["per_page"]}
