"""The admin menu: each area with the roles that see it. Areas not built yet are left out."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request, url_for
from flask_login import current_user

from mailer.accounts.models import Role
from mailer.admin.access import ADMIN, COMPLIANCE, MARKETING, STAFF


@dataclass(frozen=True)
class Area:
    endpoint: str
    label: str
    roles: tuple[Role, ...]


AREAS = (
    Area("admin.dashboard", "Dashboard", STAFF),
    Area("admin_subscribers.index", "Subscribers", STAFF),
    Area("admin_topics.index", "Topics & forms", MARKETING),
    Area("admin_segments.index", "Segments", MARKETING),
    Area("admin_templates.index", "Templates", MARKETING),
    Area("admin_campaigns.index", "Campaigns", MARKETING),
    Area("admin_compliance.index", "Compliance", COMPLIANCE),
    Area("admin_settings.index", "Settings", ADMIN),
    Area("admin_users.index", "Users & API keys", ADMIN),
    Area("outbox.index", "Outbox", STAFF),
)


@dataclass(frozen=True)
class Link:
    url: str
    label: str
    current: bool


def menu() -> list[Link]:
    """The areas the signed-in user may open, the current one marked."""
    if not current_user.is_authenticated:
        return []
    links = []
    here = request.blueprint or ""
    for area in AREAS:
        if area.endpoint not in current_app.view_functions or current_user.role not in area.roles:
            continue
        blueprint = area.endpoint.split(".")[0]
        current = request.endpoint == area.endpoint or (blueprint != "admin" and here == blueprint)
        links.append(Link(url_for(area.endpoint), area.label, current))
    return links


def has_endpoint(endpoint: str) -> bool:
    """For templates: link to a page only once its area is built."""
    return endpoint in current_app.view_functions
