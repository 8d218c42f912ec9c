"""The access document (`mailer.compliance.access.export`) as a ZIP of CSVs, one per section,
for people and tools that read spreadsheets rather than JSON (GDPR Art. 20: structured,
commonly used, machine-readable).

Columns are fixed per section, so an empty section is still a file with its header row. Cells
that a spreadsheet would run as a formula are prefixed with `'`, as in the consent audit
export (`mailer.compliance.audit_export`). Nested values (attributes that are lists, the
evidence of a consent event) are written as JSON text.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable
from typing import IO, Any

from mailer.compliance.audit_export import FORMULA_START

PROFILE = (
    "email",
    "name",
    "locale",
    "status",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "last_open_at",
    "last_click_at",
    "open_count",
    "machine_open_count",
    "click_count",
    "bounce_count",
)
SECTIONS: dict[str, tuple[str, ...]] = {
    "profile": PROFILE,
    "attributes": ("name", "value"),
    "subscriptions": ("topic", "topic_name", "status", "created_at", "confirmed_at"),
    "consent_events": (
        "seq",
        "occurred_at",
        "type",
        "topics",
        "lawful_basis",
        "source",
        "form_id",
        "form_version",
        "consent_text_sha256",
        "locale",
        "email",
        "ip",
        "user_agent",
        "evidence",
        "row_hash",
    ),
    "consent_texts": ("sha256", "form_id", "version", "text"),
    "messages": ("kind", "status", "message_id", "created_at", "sent_at"),
    "deliveries": (
        "delivery_id",
        "campaign_id",
        "campaign",
        "subject",
        "status",
        "sent_at",
        "opened_at",
        "clicked_at",
        "error",
    ),
    "opens": (
        "occurred_at",
        "campaign_id",
        "delivery_id",
        "machine",
        "reason",
        "user_agent",
    ),
    "clicks": (
        "occurred_at",
        "campaign_id",
        "delivery_id",
        "link_index",
        "url",
        "machine",
        "reason",
        "user_agent",
    ),
    "bounces": (
        "occurred_at",
        "kind",
        "source",
        "status",
        "diagnostic",
        "campaign_id",
        "delivery_id",
        "suppressed",
    ),
}


def cell(value: Any) -> Any:
    """One CSV cell: JSON for nested values, `'` before what would start a formula."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value  # OWASP: shown as text, never run as a formula
    return "" if value is None else value


def section_rows(document: dict[str, Any], section: str) -> list[dict[str, Any]]:
    """The rows of one section of the access document."""
    profile = document.get("profile")
    if section == "profile":
        if profile is None:
            return []
        return [{"email": document["email"], **profile, **profile["engagement"]}]
    if section == "attributes":
        attributes = (profile or {}).get("attributes") or {}
        return [{"name": k, "value": v} for k, v in sorted(attributes.items())]
    if section == "consent_texts":
        return [{"sha256": k, **v} for k, v in document["consent_texts"].items()]
    return list(document[section])


def write(document: dict[str, Any], out: IO[bytes]) -> None:
    """Write the ZIP to the binary stream `out`. Pure: no database, nothing to commit."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for section, columns in SECTIONS.items():
            archive.writestr(f"{section}.csv", _csv(columns, section_rows(document, section)))


def _csv(columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: cell(row.get(c)) for c in columns})
    return text.getvalue()


def archive(document: dict[str, Any]) -> bytes:
    """The ZIP as bytes (an access document is one person's data: small)."""
    buffer = io.BytesIO()
    write(document, buffer)
    return buffer.getvalue()
