"""Every admin blueprint, registered by `create_app`. Add an area here."""

from __future__ import annotations

from mailer.admin import assets, dashboard

ALL = [assets.bp, dashboard.bp]
