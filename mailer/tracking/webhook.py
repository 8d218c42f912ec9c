"""The bounce webhook's JSON shape, and recording what it reports.

`POST /webhooks/bounces` takes one event or a list of at most `MAX_EVENTS`:

    {"type": "hard" | "soft" | "complaint",   required
     "email": "ann@example.com",              the recipient (optional if message_id is ours)
     "message_id": "<c12.d345.0123abcd...@news.example.org>",   our Message-ID, optional
     "status": "5.1.1",                       RFC 3463 status or SMTP code, optional
     "diagnostic": "550 5.1.1 user unknown",  optional, kept short with addresses removed
     "occurred_at": "2026-05-01T10:00:00Z"}   ISO 8601, optional (default: now)

At least one of `email` and `message_id` is required. Other keys are ignored, so a relay's
richer payload can be passed through after mapping these names.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from email_validator import EmailNotValidError
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy.orm import Session

from mailer.campaigns import identity
from mailer.subscribers.schemas import MAX_EMAIL, normalise_email
from mailer.tracking import bounces
from mailer.tracking.ingest import delivery_for
from mailer.tracking.models import BounceKind, BounceSource

MAX_EVENTS = 1000
STATUS = r"^(?:[245]\.\d{1,3}\.\d{1,3}|[245]\d\d)$"


class _Address(fields.String):
    """An email address, normalised as subscribers' are; English messages (API)."""

    default_error_messages = {"invalid": "Not a valid email address."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if len(text) > MAX_EMAIL:
            raise self.make_error("invalid")
        try:
            return normalise_email(text)
        except EmailNotValidError as exc:
            raise self.make_error("invalid") from exc


class BounceEventArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    type = fields.String(
        required=True, validate=validate.OneOf([kind.value for kind in BounceKind])
    )
    email = _Address(load_default=None)
    message_id = fields.String(load_default=None, validate=validate.Length(max=998))
    status = fields.String(
        load_default="",
        validate=validate.Regexp(STATUS, error="Use an RFC 3463 status like 5.1.1, or 550."),
    )
    diagnostic = fields.String(load_default="", validate=validate.Length(max=2000))
    occurred_at = fields.AwareDateTime(load_default=None, default_timezone=UTC)

    @validates_schema
    def _someone(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data.get("email") and not data.get("message_id"):
            raise ValidationError("Give the recipient's email, our message_id, or both.", "email")


def record_events(
    session: Session, events: list[dict[str, Any]], secret: str
) -> list[dict[str, Any]]:
    """Record loaded `BounceEventArgs` events; one result per event, in order. Commits.

    An event whose message_id is not ours and that has no email is ignored (answered, not
    refused: a relay retries a refused batch forever). Rerunning is safe (see
    `bounces.record`).
    """
    results: list[dict[str, Any]] = []
    for event in events:
        ref = identity.parse(secret, event["message_id"]) if event["message_id"] else None
        delivery_id = delivery_for(session, ref)
        if delivery_id is None and not event["email"]:
            results.append({"recorded": False, "ignored": "not a message we sent"})
            continue
        kind = BounceKind(event["type"])
        bounce, new = bounces.record(
            session,
            delivery_id=delivery_id,
            email=event["email"],
            kind=kind,
            source=BounceSource.WEBHOOK,
            status=event["status"],
            detail=event["diagnostic"],
            occurred_at=event["occurred_at"].astimezone(UTC) if event["occurred_at"] else None,
        )
        results.append(
            {
                "recorded": new,
                "kind": kind.value,
                "delivery_id": bounce.delivery_id,
                "suppressed": bounce.suppressed,
            }
        )
    session.commit()
    return results
