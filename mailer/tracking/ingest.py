"""Feeding bounce mail in: one raw message, a message file, an mbox or a Maildir.

Each message is parsed (`reports.parse`), matched to our delivery by its MAC-checked
Message-ID, recorded (`bounces.record`) and committed on its own, so a bad message never
holds back the others. Mailboxes are only read, never changed: feeding the same mailbox twice
records nothing new (bounce rows are unique per delivery and kind).
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from mailer.campaigns.identity import MessageRef
from mailer.campaigns.models import Delivery
from mailer.tracking import bounces, reports
from mailer.tracking.models import Bounce


@dataclass
class IngestReport:
    messages: int = 0  # messages read
    recorded: int = 0  # new bounce or complaint rows
    repeated: int = 0  # already recorded (the same report fed in again)
    ignored: int = 0  # messages with nothing to record: no report, or not about our mail


def delivery_for(session: Session, ref: MessageRef | None) -> int | None:
    """The delivery a verified Message-ID names, if it still exists and belongs to that
    campaign."""
    if ref is None:
        return None
    delivery = session.get(Delivery, ref.delivery_id)
    if delivery is None or delivery.campaign_id != ref.campaign_id:
        return None
    return delivery.id


def ingest_message(session: Session, raw: bytes, secret: str) -> list[tuple[Bounce, bool]]:
    """Record what one message reports; returns (row, new?) per event. Commits.

    An event needs our delivery or a recipient address; with neither (a redacted complaint
    about someone else's mail) it is skipped. Rerunning is safe.
    """
    results = []
    for event in reports.parse(raw, secret):
        delivery_id = delivery_for(session, event.message)
        if delivery_id is None and not event.recipient:
            continue
        results.append(
            bounces.record(
                session,
                delivery_id=delivery_id,
                email=event.recipient,
                kind=event.kind,
                source=event.source,
                status=event.status,
                detail=event.diagnostic,
                occurred_at=event.occurred_at,
            )
        )
    session.commit()
    return results


def ingest_path(session: Session, path: Path, secret: str) -> IngestReport:
    """Ingest a message file, an mbox file, a Maildir, or a folder of message files.
    Commits per message; safe to rerun on the same mailbox."""
    report = IngestReport()
    for raw in _messages(Path(path)):
        report.messages += 1
        results = ingest_message(session, raw, secret)
        if not results:
            report.ignored += 1
        for _bounce, new in results:
            if new:
                report.recorded += 1
            else:
                report.repeated += 1
    return report


def _messages(path: Path) -> Iterator[bytes]:
    if path.is_dir():
        if (path / "cur").is_dir() or (path / "new").is_dir():
            box = mailbox.Maildir(str(path), factory=None, create=False)
            for key in sorted(box.keys()):
                yield box.get_bytes(key)
            return
        for item in sorted(p for p in path.iterdir() if p.is_file() and p.name[0] != "."):
            yield item.read_bytes()
        return
    with path.open("rb") as fh:
        mbox = fh.read(5) == b"From "
    if mbox:
        box = mailbox.mbox(str(path), create=False)
        for key in box.iterkeys():
            yield box.get_bytes(key)
        return
    yield path.read_bytes()
