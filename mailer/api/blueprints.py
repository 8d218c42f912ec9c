"""Every API blueprint, in the order the OpenAPI document lists them."""

from __future__ import annotations

from mailer.api import topics

ALL = [topics.blp]
