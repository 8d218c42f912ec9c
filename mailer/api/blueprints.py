"""Every API blueprint, in the order the OpenAPI document lists them."""

from __future__ import annotations

from mailer.api import (
    audit_log,
    campaigns,
    consent,
    forms,
    segments,
    subjects,
    subscribers,
    templates,
    topics,
)

ALL = [
    topics.blp,
    templates.blp,
    campaigns.blp,
    forms.blp,
    subscribers.blp,
    segments.blp,
    consent.blp,
    subjects.blp,
    audit_log.blp,
]
