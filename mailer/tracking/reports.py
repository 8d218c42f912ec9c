"""Reading bounce mail: RFC 3464 delivery status notifications and RFC 5965 feedback reports.

Both arrive as `multipart/report`:
- `report-type=delivery-status`: a `message/delivery-status` part with one block of
  per-message fields and one block per recipient (Final-Recipient, Action, Status,
  Diagnostic-Code). `failed` + 5.x.x is hard, 4.x.x or `delayed` is soft
  (`bounces.kind_for_status`), `delivered`/`relayed`/`expanded` are no bounce.
- `report-type=feedback-report`: a `message/feedback-report` part (Feedback-Type,
  User-Agent, Version, Original-Rcpt-To, Arrival-Date, ...). `abuse` and `fraud` are
  complaints; other types (`not-spam`, `auth-failure`, `virus`, ...) are not.

Which message it was about: our Message-ID (`mailer.campaigns.identity`, with a keyed MAC,
so a forged report cannot name someone else's delivery), searched in the returned original
(`message/rfc822` or `text/rfc822-headers`) and, failing that, anywhere in the report.
Complaint recipients are often redacted ("xxxxxxxx@example.com"); those are not used.

Parsing only: nothing here touches the database. Mail that is no report (an auto-reply,
a human answer, a provider's own text-only bounce) gives no events.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from email.utils import parsedate_to_datetime

from mailer.campaigns import identity
from mailer.campaigns.identity import MessageRef
from mailer.tracking.bounces import kind_for_status, scrub, status_code
from mailer.tracking.models import BounceKind, BounceSource

COMPLAINT_TYPES = {"abuse", "fraud"}
_REDACTED = re.compile(r"^(?:[x*#._-]+|.*redacted.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class ReportEvent:
    kind: BounceKind
    source: BounceSource  # DSN or ARF
    # As reported, not yet validated; None when missing or redacted.
    recipient: str | None
    status: str
    diagnostic: str
    occurred_at: datetime | None
    message: MessageRef | None  # our delivery, when the report names one of our messages


def parse(raw: bytes, secret: str) -> list[ReportEvent]:
    """The bounces and complaints one message reports (empty for anything else)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    report = _find_report(message)
    if report is None:
        return []
    kind = (report.get_param("report-type") or "").lower()
    ref = identity.parse(secret, _original_headers(report)) or identity.parse(
        secret, raw.decode("utf-8", "replace")
    )
    sent = _date(message.get("Date"))
    if kind == "delivery-status":
        return _dsn(report, ref, sent)
    if kind == "feedback-report":
        return _arf(report, ref, sent)
    return []


def _dsn(report: Message, ref: MessageRef | None, sent: datetime | None) -> list[ReportEvent]:
    part = _part(report, "message/delivery-status")
    if part is None:
        return []
    blocks = _blocks(part)
    if not blocks:
        return []
    per_message, recipients = blocks[0], blocks[1:]
    if "Final-Recipient" in per_message or "Action" in per_message:
        # A sloppy MTA without the per-message block.
        per_message, recipients = Message(), blocks
    arrived = _date(per_message.get("Arrival-Date"))
    events = []
    for block in recipients:
        action = _field(block, "Action").lower()
        status_field = _field(block, "Status")
        diagnostic = _field(block, "Diagnostic-Code")
        kind = kind_for_status(status_field or diagnostic, action or "failed")
        if kind is None:
            continue
        recipient = _address(_field(block, "Original-Recipient")) or _address(
            _field(block, "Final-Recipient")
        )
        events.append(
            ReportEvent(
                kind=kind,
                source=BounceSource.DSN,
                recipient=recipient,
                status=status_code(status_field) or status_code(diagnostic),
                diagnostic=scrub(_strip_type(diagnostic) or f"{action} {status_field}"),
                occurred_at=_date(_field(block, "Last-Attempt-Date")) or sent or arrived,
                message=ref,
            )
        )
    return events


def _arf(report: Message, ref: MessageRef | None, sent: datetime | None) -> list[ReportEvent]:
    part = _part(report, "message/feedback-report")
    if part is None:
        return []
    blocks = _blocks(part)
    fields = blocks[0] if blocks else Message()
    feedback_type = _field(fields, "Feedback-Type").lower()
    if feedback_type not in COMPLAINT_TYPES:
        return []
    agent = _field(fields, "User-Agent")
    recipient = _address(_field(fields, "Original-Rcpt-To")) or _address(
        _field(fields, "Removal-Recipient")
    )
    return [
        ReportEvent(
            kind=BounceKind.COMPLAINT,
            source=BounceSource.ARF,
            recipient=recipient,
            status="",
            diagnostic=scrub(f"feedback-type {feedback_type}; {agent}".strip("; ")),
            occurred_at=_date(_field(fields, "Arrival-Date"))
            or _date(_field(fields, "Received-Date"))
            or sent,
            message=ref,
        )
    ]


def _find_report(message: Message) -> Message | None:
    """The multipart/report part (at the top, or wrapped by a forwarding mailbox)."""
    for part in message.walk():
        if part.get_content_type() == "multipart/report":
            return part
    return None


def _part(report: Message, content_type: str) -> Message | None:
    for part in report.get_payload() if report.is_multipart() else []:
        if part.get_content_type() == content_type:
            return part
    return None


def _blocks(part: Message) -> list[Message]:
    """Header blocks of a message/delivery-status or message/feedback-report part; the parser
    hands over either parsed blocks or the text, depending on the type."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    if part.get("Content-Transfer-Encoding", "").lower() in {"base64", "quoted-printable"}:
        decoded = part.get_payload(decode=True) or b""
        text = decoded.decode("utf-8", "replace")
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [HeaderParser().parsestr(chunk.strip() + "\n") for chunk in chunks if chunk.strip()]


def _original_headers(report: Message) -> str:
    """Header text of the returned original, where our Message-ID sits."""
    for part in report.get_payload() if report.is_multipart() else []:
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message):
                return "\n".join(f"{k}: {v}" for k, v in inner.items())
        if content_type == "text/rfc822-headers":
            data = part.get_payload(decode=True) or b""
            return data.decode("utf-8", "replace")
    return ""


def _field(block: Message, name: str) -> str:
    """A field's value on one line (folded lines joined), or ""."""
    value = block.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _strip_type(value: str) -> str:
    """Drop the type of an RFC 3464 typed field: "smtp; 550 5.1.1 ..." → "550 5.1.1 ..."."""
    kind, sep, rest = value.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else value


def _address(value: str) -> str | None:
    """The address in "rfc822; ann@example.com", unless missing or redacted."""
    address = _strip_type(value).strip().strip("<>").strip()
    local, at, _domain = address.rpartition("@")
    if not at or not local or _REDACTED.match(local):
        return None
    return address


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(" ".join(str(value).split()))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
