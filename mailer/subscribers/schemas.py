"""The public boundary: what a sign-up may carry, and the errors that name each field."""

from __future__ import annotations

import unicodedata
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask_babel import lazy_gettext as _l
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

MAX_EMAIL = 254
# Topic and form slugs: what may appear in a URL or a form field as a name.
SLUG = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


def normalise_email(value: str) -> str:
    """email-validator's normal form (IDN domains to Unicode NFC), then lower case.

    Raises `EmailNotValidError`. Lower-casing the local part is what every mailbox provider
    does in practice, and it is what makes "Ann@x" and "ann@x" one subscriber.
    """
    info = validate_email(value, check_deliverability=False)
    return info.normalized.lower()


class EmailAddress(fields.String):
    default_error_messages = {
        "invalid": _l("Enter a valid email address, like name@example.com."),
        "too_long": _l("The email address is too long."),
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if len(text) > MAX_EMAIL:
            raise self.make_error("too_long")
        try:
            return normalise_email(text)
        except EmailNotValidError as exc:
            raise self.make_error("invalid") from exc


class PersonName(fields.String):
    default_error_messages = {
        "control": _l("The name can't contain line breaks or control characters."),
        "too_long": _l("The name is too long (200 characters at most)."),
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        # Control and format characters, lone surrogates, and RFC 2047 encoded words, which
        # Python's email package would decode back into line breaks in a header.
        if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Zl", "Zp"} for ch in text) or (
            "=?" in text and "?=" in text
        ):
            raise self.make_error("control")
        text = " ".join(text.split())
        if len(text) > 200:
            raise self.make_error("too_long")
        return text


def _must_consent(value: bool) -> None:
    if value is not True:
        raise ValidationError(str(_l("Please tick the box to give your consent.")))


class SignupArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    email = EmailAddress(
        required=True,
        error_messages={
            "required": _l("Enter your email address."),
            "null": _l("Enter your email address."),
            "invalid": _l("Enter a valid email address, like name@example.com."),
        },
    )
    name = PersonName(
        load_default="",
        error_messages={
            "invalid": _l("The name must be text."),
            "null": _l("The name must be text."),
        },
    )
    topics = fields.List(
        fields.String(
            validate=validate.Regexp(SLUG, error=_l("Unknown topic.")),
            error_messages={"invalid": _l("Unknown topic.")},
        ),
        load_default=list,
        validate=validate.Length(max=50, error=_l("Too many topics.")),
        error_messages={
            "invalid": _l("Topics must be a list of topic names."),
            "null": _l("Topics must be a list of topic names."),
        },
    )
    # The consent text version the visitor was shown (the embed snippet sends it).
    form_version = fields.Integer(
        load_default=None,
        strict=False,
        validate=validate.Range(min=1, error=_l("The form has changed. Reload it.")),
        error_messages={"invalid": _l("The form has changed. Reload it.")},
    )
    consent = fields.Boolean(
        required=True,
        validate=_must_consent,
        error_messages={
            "required": _l("Please tick the box to give your consent."),
            "null": _l("Please tick the box to give your consent."),
            "invalid": _l("Please tick the box to give your consent."),
        },
    )


def messages(errors: dict[str, Any]) -> dict[str, list[str]]:
    """Marshmallow's error dict with lazy strings made plain (JSON-ready), one list per field."""
    out: dict[str, list[str]] = {}
    for key, value in errors.items():
        if isinstance(value, dict):  # list fields report per index
            flat = [
                str(m)
                for msgs in value.values()
                for m in (msgs if isinstance(msgs, list) else [msgs])
            ]
            out[key] = flat
        elif isinstance(value, list):
            out[key] = [str(m) for m in value]
        else:
            out[key] = [str(value)]
    return out
