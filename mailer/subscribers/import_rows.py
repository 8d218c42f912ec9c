"""Reading an import CSV: the columns it may have, and each row checked into a `Row` or a
list of problems by field. Reads topics, forms and form versions; writes nothing.

Columns (header names are case-insensitive):
  email (required), name, locale, topics (slugs separated by `;`), attr.<key> (attributes,
  as text), consent_at (ISO 8601; a date alone is midnight UTC; no zone means UTC),
  consent_source (free text: where and how), consent_text (the exact text shown) or
  form_version_id, consent_ip (optional). Evidence is complete with consent_at and either
  consent_text or form_version_id; a row with part of it is an error, never a guess.
"""

from __future__ import annotations

import codecs
import ipaddress
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.consent import ledger
from mailer.database import utcnow
from mailer.subscribers import profiles
from mailer.subscribers.models import Form, FormVersion, Topic
from mailer.subscribers.schemas import MAX_EMAIL, normalise_email

MAX_CONSENT_TEXT = 10_000
MAX_SOURCE = 500
MAX_NAME = 200
ATTR = "attr."
FIELDS = (
    "email",
    "name",
    "locale",
    "topics",
    "consent_at",
    "consent_source",
    "consent_text",
    "form_version_id",
    "consent_ip",
)
EVIDENCE = ("consent_at", "consent_source", "consent_text", "form_version_id", "consent_ip")
CLOCK_SKEW = timedelta(minutes=5)
MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database


class BadFile(ValueError):
    """The file as a whole cannot be read as an import (no header, unknown columns)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Evidence:
    consent_at: datetime
    source: str
    text: str | None
    version_id: int | None
    version_form_id: int | None
    sha256: str
    ip: str | None


@dataclass(frozen=True)
class Row:
    line: int
    email: str
    name: str | None
    locale: str | None
    topics: tuple[str, ...]  # slugs, each known; empty: the option's topic or the form's
    attributes: dict[str, str]
    evidence: Evidence | None


class NotText(ValueError):
    def __init__(self, line: int) -> None:
        super().__init__(f"line {line} is not UTF-8 text")
        self.line = line


def lines(data: Iterable[bytes]) -> Iterator[str]:
    """Decoded line by line, so that a bad byte is reported on its own line."""
    for number, raw in enumerate(data, 1):
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotText(number) from exc


def records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, cells), skipping blank lines."""
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        if cells and any(c.strip() for c in cells):
            yield start, cells


def columns(header: list[str] | None) -> list[str]:
    """Column names, normalised (`attr.` keys keep their case). Raises `BadFile`."""
    if not header:
        raise BadFile("file", "the file is empty: its first line must name the columns")
    names: list[str] = []
    for raw in header:
        name = raw.strip()
        if name.lower().startswith(ATTR):
            key = name[len(ATTR) :]
            problem = profiles.check_attribute(key, "")
            if problem:
                raise BadFile("file", f"column {raw!r}: {next(iter(problem.values()))[0]}")
            name = ATTR + key
        elif name.lower() in FIELDS:
            name = name.lower()
        else:
            raise BadFile(
                "file",
                f"unknown column {raw!r}: use {', '.join(FIELDS)}, or attr.<name> for an attribute",
            )
        if name in names:
            raise BadFile("file", f"column {raw!r} appears twice")
        names.append(name)
    if "email" not in names:
        raise BadFile("file", "the header must have an email column")
    if sum(n.startswith(ATTR) for n in names) > profiles.MAX_KEYS:
        raise BadFile("file", f"at most {profiles.MAX_KEYS} attr. columns")
    return names


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _control(text: str) -> bool:
    return any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Zl", "Zp"} for ch in text)


Problems = list[tuple[str, str]]  # (field, message)


class RowParser:
    """Checks rows against the topics and form versions that exist. `form`: the import's form
    (its only topic is the default for rows naming none); `topic`: the default topic slug."""

    def __init__(
        self,
        session: Session,
        form: Form | None = None,
        topic: str | None = None,
        locales: tuple[str, ...] = ("en",),
        truncate_ip: bool = False,
    ) -> None:
        self.session = session
        self.form = form
        self.topic = topic
        self.locales = locales
        self.truncate_ip = truncate_ip
        self.topics: dict[str, int] = dict(session.execute(select(Topic.slug, Topic.id)).all())
        self.versions: dict[int, FormVersion | None] = {}

    def parse(self, line: int, names: list[str], cells: list[str]) -> Row | Problems:
        """The row, or every problem with it, by field."""
        if len(cells) > len(names):
            return [("file", f"{len(cells)} cells, but the header names {len(names)}")]
        values = dict(zip(names, [c.strip() for c in cells], strict=False))
        errors: Problems = []
        email = self._email(values.get("email", ""), errors)
        name = values.get("name") or None
        if name is not None and (_control(name) or len(name) > MAX_NAME):
            errors.append(("name", f"at most {MAX_NAME} characters, no control characters"))
        locale = values.get("locale") or None
        if locale is not None and locale not in self.locales:
            errors.append(("locale", f"use one of {', '.join(self.locales)}"))
        slugs = tuple(dict.fromkeys(s.strip() for s in values.get("topics", "").split(";")))
        slugs = tuple(s for s in slugs if s)
        unknown = [s for s in slugs if s not in self.topics]
        if unknown:
            errors.append(("topics", f"unknown topic: {', '.join(unknown)}"))
        if not slugs and self.topic:
            slugs = (self.topic,)
        attributes = {}
        for key, value in values.items():
            if key.startswith(ATTR) and value:
                if len(value) > profiles.MAX_TEXT:
                    errors.append((key, f"at most {profiles.MAX_TEXT} characters"))
                attributes[key[len(ATTR) :]] = value
        evidence = self._evidence(values, errors)
        if evidence is not None and not slugs:
            slugs = self._single_topic(evidence.version_form_id)
            if not slugs:
                errors.append(("topics", "name the topics (this column, or the topic option)"))
        if errors:
            return errors
        return Row(line, email, name, locale, slugs, attributes, evidence)

    @staticmethod
    def _email(raw: str, errors: Problems) -> str:
        if not raw:
            errors.append(("email", "required"))
            return ""
        try:
            if len(raw) > MAX_EMAIL:
                raise EmailNotValidError("too long")
            return normalise_email(raw)
        except EmailNotValidError:
            errors.append(("email", "not a valid email address"))
            return ""

    def _evidence(self, values: dict[str, str], errors: Problems) -> Evidence | None:
        given = {k: values.get(k, "") for k in EVIDENCE}
        if not any(given.values()):
            return None
        count = len(errors)
        consent_at = None
        if not given["consent_at"]:
            errors.append(("consent_at", "evidence needs the time consent was given"))
        else:
            try:
                consent_at = _parse_time(given["consent_at"])
            except ValueError:
                errors.append(("consent_at", "not an ISO 8601 date or time"))
            else:
                if consent_at > utcnow() + CLOCK_SKEW:
                    errors.append(("consent_at", "is in the future"))
        text = given["consent_text"] or None
        if text is not None and len(text) > MAX_CONSENT_TEXT:
            errors.append(("consent_text", f"at most {MAX_CONSENT_TEXT} characters"))
        version = None
        if given["form_version_id"]:
            raw = given["form_version_id"]
            if raw.isascii() and raw.isdigit() and int(raw) <= MAX_ID:
                version = self._version(int(raw))
            if version is None:
                errors.append(("form_version_id", "no such consent text version"))
            elif text is not None and text != version.consent_text:
                errors.append(
                    ("consent_text", f"differs from the text of form version {version.id}")
                )
        elif text is None:
            errors.append(
                ("consent_text", "evidence needs the exact consent text shown, or form_version_id")
            )
        source = given["consent_source"]
        if len(source) > MAX_SOURCE or _control(source):
            errors.append(("consent_source", f"at most {MAX_SOURCE} characters on one line"))
        ip = given["consent_ip"] or None
        if ip is not None:
            try:
                ip = str(ipaddress.ip_address(ip))
            except ValueError:
                errors.append(("consent_ip", "not an IP address"))
            else:
                ip = ledger.truncate_ip(ip) if self.truncate_ip else ip
        if len(errors) > count or consent_at is None:
            return None
        return Evidence(
            consent_at=consent_at,
            source=source,
            text=None if version is not None else text,
            version_id=version.id if version else None,
            version_form_id=version.form_id if version else None,
            sha256=version.consent_text_sha256 if version else FormVersion.digest(text or ""),
            ip=ip,
        )

    def _single_topic(self, form_id: int | None) -> tuple[str, ...]:
        """The topic of the evidence's form (or the import's form) when it has just one."""
        form = self.form if form_id is None else self.session.get(Form, form_id)
        if form is not None and len(form.topics) == 1:
            return (form.topics[0].slug,)
        return ()

    def _version(self, version_id: int) -> FormVersion | None:
        if version_id not in self.versions:
            self.versions[version_id] = self.session.get(FormVersion, version_id)
        return self.versions[version_id]
