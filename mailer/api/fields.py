"""Fields, arguments and checks the API's schemas share: ids, addresses, the form argument,
locales, text without control characters. Messages are English (the API is not translated).

The id limits are the database's, so the admin pages use `ID` and `MAX_ID` too."""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError
from flask import current_app
from marshmallow import ValidationError, fields, validate

from mailer.api.errors import ApiError
from mailer.subscribers.schemas import MAX_EMAIL, normalise_email

MAX_ID = 2**31 - 1  # ids are 32-bit in the database; larger ones name nothing
ID = f"int(max={MAX_ID})"  # the route converter for ids: too large is a 404, not an error


def normalised_address(value: str) -> str:
    """The address as subscribers are stored (email-validator's form, lower case); raises
    `ValueError`."""
    text = value.strip()
    if not text or len(text) > MAX_EMAIL:
        raise ValueError(value)
    try:
        return normalise_email(text)
    except EmailNotValidError as exc:
        raise ValueError(value) from exc


class Address(fields.String):
    """An email address, normalised like sign-ups, so "Ann@X" finds "ann@x"."""

    default_error_messages = {"invalid_address": "not a valid email address"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalised_address(text)
        except ValueError as exc:
            raise self.make_error("invalid_address") from exc


def address_or_400(value: str, field: str = "email") -> str:
    try:
        return normalised_address(value)
    except ValueError:
        raise ApiError(422, {field: ["not a valid email address"]}) from None


def form_id_arg(args: dict[str, Any]) -> int | None:
    """The `form` query argument (a form id). Read as text and checked here: a field named
    "form" would be taken for webargs' location of that name when errors are flattened."""
    raw = args.get("form")
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_ID:
        raise ApiError(422, {"form": ["a form id (a whole number)"]})
    return int(raw)


def check_locale(value: str | None) -> None:
    """A locale we have translations for (system emails are sent in it)."""
    locales = current_app.config["MAILER"].locales
    if value is not None and value not in locales:
        raise ValidationError(f"use one of {', '.join(locales)}")


# Control characters have no place in stored text (PostgreSQL refuses NUL outright); tabs and
# line breaks are allowed only where a field says so.
_CONTROL = {chr(c) for c in range(32)} - {"\t", "\n", "\r"} | {"\x7f"}


def no_control(multiline: bool = False) -> validate.Validator:
    """A validator refusing NUL and other control characters (and CR/LF unless `multiline`)."""
    banned = _CONTROL if multiline else _CONTROL | {"\n", "\r"}

    def check(value: str) -> None:
        if any(ch in banned for ch in value):
            raise ValidationError(
                "must not contain control characters" + ("" if multiline else " or line breaks")
            )

    return check


id_range = validate.Range(min=1, max=MAX_ID, error="no such id")
