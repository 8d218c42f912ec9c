"""Every admin blueprint, registered by `create_app`. Add an area here."""

from __future__ import annotations

from mailer.admin import account, assets, campaigns, compliance, dashboard, email_templates
from mailer.admin import segments as admin_segments
from mailer.admin import settings as admin_settings
from mailer.admin import subscribers as admin_subscribers
from mailer.admin import topics as admin_topics
from mailer.admin import users as admin_users

ALL = [
    assets.bp,
    dashboard.bp,
    compliance.bp,
    email_templates.bp,
    campaigns.bp,
    admin_settings.bp,
    admin_users.bp,
    account.bp,
    admin_subscribers.bp,
    admin_topics.bp,
    admin_segments.bp,
]
