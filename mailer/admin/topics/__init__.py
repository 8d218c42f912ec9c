"""Topics and sign-up forms: create and edit them, a form's consent text versions, a preview
of the hosted form at phone width and the embed snippet to copy. Marketing staff only."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin_topics", __name__, url_prefix="/admin/topics")

from mailer.admin.topics import forms, topics  # noqa: E402,F401  (register the views)
