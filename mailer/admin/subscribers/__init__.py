"""Subscribers: search and filter, one profile (attributes editable by marketers), and CSV
import with column mapping, a preview and a progress bar. Staff of every role may read;
only marketing staff (marketers, admins) may change anything or import."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin_subscribers", __name__, url_prefix="/admin/subscribers")

from mailer.admin.subscribers import imports, pages  # noqa: E402,F401  (register the views)
