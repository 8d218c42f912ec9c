"""The forms of the campaign flow and of test sends (Flask-WTF: CSRF and field errors).

Addresses and sender names go through the same marshmallow fields the API uses, so the
admin and the API accept and normalise exactly the same values.
"""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from marshmallow import fields as ma
from wtforms import (
    BooleanField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, ValidationError

from mailer.subscribers.schemas import EmailAddress, PersonName

MAX_TEST_ADDRESSES = 10
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MULTILINE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SEPARATORS = re.compile(r"[\s,;]+")


def one_line(form: FlaskForm, field: Any) -> None:
    """No line breaks or control characters: these values end up in mail headers."""
    if field.data and _CONTROL.search(field.data):
        raise ValidationError("Must not contain line breaks or control characters.")


def no_control(form: FlaskForm, field: Any) -> None:
    """Text over several lines (MJML, a text part): tabs and line breaks, no other controls."""
    if field.data and _MULTILINE_CONTROL.search(field.data):
        raise ValidationError("Must not contain control characters.")


def unix_lines(value: str | None) -> str | None:
    """Browsers send a textarea's lines with CRLF; store them as the API does (LF)."""
    return value.replace("\r\n", "\n").replace("\r", "\n") if value else value


def through(schema_field: ma.Field) -> Any:
    """A WTForms validator that runs (and normalises with) a marshmallow field; empty passes."""

    def check(form: FlaskForm, field: Any) -> None:
        if not field.data:
            return
        try:
            field.data = schema_field.deserialize(field.data)
        except SchemaError as exc:
            messages = exc.messages if isinstance(exc.messages, list) else [exc.messages]
            raise ValidationError(" ".join(str(m) for m in messages)) from exc

    return check


def parse_addresses(text: str) -> tuple[list[str], list[str]]:
    """Addresses separated by commas, semicolons or spaces: (normalised addresses, errors)."""
    found, errors = [], []
    for word in _SEPARATORS.split(text or ""):
        if not word:
            continue
        try:
            address = EmailAddress().deserialize(word)
        except SchemaError:
            errors.append(f"'{word[:80]}' is not a valid email address.")
            continue
        if address not in found:
            found.append(address)
    if not found and not errors:
        errors.append("Enter at least one address.")
    if len(found) > MAX_TEST_ADDRESSES:
        errors.append(f"At most {MAX_TEST_ADDRESSES} addresses per test.")
    return found, errors


class ContentForm(FlaskForm):
    name = StringField(
        "Campaign name (only you see it)",
        validators=[InputRequired("Give the campaign a name."), Length(max=200), one_line],
    )
    subject = StringField("Subject", validators=[Length(max=500), one_line])
    preheader = StringField(
        "Preheader (the line inboxes show after the subject)",
        validators=[Length(max=500), one_line],
    )
    from_name = StringField("From name", validators=[through(PersonName())])
    from_email = StringField("From address", validators=[through(EmailAddress())])
    reply_to = StringField("Reply-To (optional)", validators=[through(EmailAddress())])
    template_id = SelectField(
        "Template", coerce=int, validators=[InputRequired("Choose a template.")]
    )


class AudienceForm(FlaskForm):
    topic_id = SelectField("Topic", coerce=int, validators=[InputRequired("Choose a topic.")])
    # 0: no segment (everyone subscribed to the topic).
    segment_id = SelectField("Segment", coerce=int, default=0)


class TrackingForm(FlaskForm):
    track_opens = BooleanField("Track opens (a pixel in the message)")
    track_clicks = BooleanField("Track clicks (links go through this server)")


class ScheduleForm(FlaskForm):
    when = RadioField(
        "When",
        choices=[
            SelectChoice("now", "Send now (after the review)"),
            SelectChoice("later", "At a date and time"),
        ],
        default="now",
        validators=[InputRequired("Choose when to send.")],
    )
    send_at = StringField("Date and time")
    timezone = SelectField("Time zone", default="UTC")


class TestSendForm(FlaskForm):
    addresses = TextAreaField(
        "Send a test to (up to 10 addresses)", validators=[InputRequired("Enter an address.")]
    )
    subject = StringField("Subject (optional)", validators=[Length(max=500), one_line])
