"""The settings an admin may change: each a typed key with its validation, its JSON form, and
how it lays over the environment's `Settings`.

A key's value is validated by its marshmallow schema when saved and again when read back (a
value saved by an older release that no longer validates is ignored, not obeyed). Secrets
(the SMTP URL, which may hold a password) are sealed in the store and shown masked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from marshmallow import Schema, ValidationError, fields, pre_load, validate

from mailer.config import SenderIdentity, Settings
from mailer.delivery.transport import SmtpTarget
from mailer.subscribers.schemas import EmailAddress, PersonName

# What stands for the SMTP password wherever the URL is shown; sent back unchanged, it means
# "keep the password" (see `unmask_smtp_url`).
MASK = "********"
MAX_IDENTITIES = 50
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


def _no_control(value: str) -> None:
    if any(ch in _CONTROL for ch in value):
        raise ValidationError("must not contain control characters or line breaks")


class IdentitySchema(Schema):
    name = PersonName(required=True, validate=validate.Length(min=1, error="enter a name"))
    email = EmailAddress(required=True)
    reply_to = EmailAddress(load_default="")

    @pre_load
    def _blank_reply_to(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, Mapping) and not (data.get("reply_to") or "").strip():
            return {k: v for k, v in data.items() if k != "reply_to"}
        return data


class IdentitiesSchema(Schema):
    identities = fields.List(
        fields.Nested(IdentitySchema),
        required=True,
        validate=validate.Length(
            min=1, max=MAX_IDENTITIES, error=f"keep between 1 and {MAX_IDENTITIES} identities"
        ),
    )


def _smtp_url(value: str) -> None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
        target = SmtpTarget.from_url(value)
    except ValueError as exc:
        message = str(exc).replace("MAILER_SMTP_URL", "the URL")
        raise ValidationError(message or "not a valid SMTP URL") from None
    if not parts.hostname:
        raise ValidationError("name the server: smtp://host:587")
    if parts.password == MASK:
        raise ValidationError("enter the password (it is shown masked)")
    if target.timeout <= 0:
        raise ValidationError("timeout must be a positive number of seconds")
    unknown = {p.split("=", 1)[0] for p in parts.query.split("&") if p} - {"starttls", "timeout"}
    if unknown:
        raise ValidationError(f"unknown option {sorted(unknown)[0]!r} (starttls, timeout)")


class SmtpSchema(Schema):
    url = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=2000), _no_control, _smtp_url],
    )


class RatesSchema(Schema):
    per_second = fields.Integer(required=True, validate=validate.Range(min=0, max=100_000))
    per_hour = fields.Integer(required=True, validate=validate.Range(min=0, max=100_000_000))


class TrackingSchema(Schema):
    opens = fields.Boolean(required=True)
    clicks = fields.Boolean(required=True)


class RetentionSchema(Schema):
    pending_days = fields.Integer(required=True, validate=validate.Range(min=1, max=3650))
    tracking_days = fields.Integer(required=True, validate=validate.Range(min=1, max=3650))


def mask_smtp_url(url: str) -> str:
    """The URL with its password replaced by `MASK` (for pages, history and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def unmask_smtp_url(new: str, old: str) -> str:
    """`new` as submitted, with a masked password taken from `old` when only options changed.

    The password is carried over only to the same scheme, user, host and port: pointing the
    masked URL at another server would send that server the password, so that needs the
    password typed again (`_smtp_url` refuses a URL still masked)."""
    try:
        parts, before = urlsplit(new), urlsplit(old)
        same = (parts.scheme, parts.username, parts.hostname, parts.port) == (
            before.scheme,
            before.username,
            before.hostname,
            before.port,
        )
    except ValueError:
        return new
    if parts.password != MASK or not same or before.password is None:
        return new
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{before.netloc.rpartition('@')[0]}@{host}"))


@dataclass(frozen=True)
class Key:
    """One editable setting. `read` gives the environment's value in the key's JSON form;
    `apply` turns a (validated) JSON value into `Settings` fields."""

    name: str
    label: str
    schema: Schema
    read: Callable[[Settings], Any]
    apply: Callable[[Any], dict[str, Any]]
    # Secrets: sealed in the store, shown through `mask` only.
    mask: Callable[[Any], Any] | None = None
    # Input and the value in force before → the input to validate (e.g. unmasking).
    prepare: Callable[[Mapping[str, Any], Any], Mapping[str, Any]] | None = None

    @property
    def secret(self) -> bool:
        return self.mask is not None

    def load(self, data: Mapping[str, Any]) -> Any:
        """Validate input (a form or a stored value); raises `ValidationError`."""
        return self.schema.load(data)

    def shown(self, value: Any) -> Any:
        """The value as pages and the history show it (secrets masked)."""
        if value is None or self.mask is None:
            return value
        return self.mask(value)


def _prepare_smtp(data: Mapping[str, Any], old: Any) -> Mapping[str, Any]:
    if not isinstance(data.get("url"), str) or not data["url"].strip():
        return {k: v for k, v in data.items() if k != "url"}  # "required", not "too short"
    return {**data, "url": unmask_smtp_url(data["url"].strip(), old["url"])}


def _identities(settings: Settings) -> dict[str, Any]:
    return {
        "identities": [
            {"name": i.name, "email": i.email, "reply_to": i.reply_to}
            for i in settings.sender_identities
        ]
    }


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key(
            "identities",
            "Sender identities",
            IdentitiesSchema(),
            _identities,
            lambda v: {"sender_identities": tuple(SenderIdentity(**i) for i in v["identities"])},
        ),
        Key(
            "smtp",
            "SMTP server",
            SmtpSchema(),
            lambda s: {"url": s.smtp_url},
            lambda v: {"smtp_url": v["url"]},
            mask=lambda v: {"url": mask_smtp_url(v["url"])},
            prepare=_prepare_smtp,
        ),
        Key(
            "rates",
            "Sending rate",
            RatesSchema(),
            lambda s: {"per_second": s.send_rate_per_second, "per_hour": s.send_rate_per_hour},
            lambda v: {
                "send_rate_per_second": v["per_second"],
                "send_rate_per_hour": v["per_hour"],
            },
        ),
        Key(
            "tracking",
            "Tracking defaults",
            TrackingSchema(),
            lambda s: {"opens": s.track_opens_default, "clicks": s.track_clicks_default},
            lambda v: {"track_opens_default": v["opens"], "track_clicks_default": v["clicks"]},
        ),
        Key(
            "retention",
            "Retention",
            RetentionSchema(),
            lambda s: {
                "pending_days": s.retention_pending_days,
                "tracking_days": s.retention_tracking_days,
            },
            lambda v: {
                "retention_pending_days": v["pending_days"],
                "retention_tracking_days": v["tracking_days"],
            },
        ),
    )
}
