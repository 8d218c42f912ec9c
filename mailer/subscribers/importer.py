"""Importing subscribers from CSV, without ever turning a list into consent it does not prove.

A row that carries evidence of consent given elsewhere (at least `consent_at` and the exact
text shown, `consent_text`, or a `form_version_id`) comes in active, with an "imported" event
on the consent ledger holding that evidence. A row without evidence comes in pending and is
sent a confirmation through the normal double opt-in (`signup.request_subscription`). An
import never downgrades or resets anyone: active topics stay active, a pending request is not
asked again (so rerunning an import mails nobody twice), and a topic the person withdrew from
is only reactivated by evidence newer than the withdrawal (Art. 21(3): an objection to direct
marketing is final until the person says otherwise). Suppressed and erased addresses are
skipped. Bad rows are reported with their line and field; they never stop the import.

The file is read as a stream, line by line, in chunks; rows with evidence are committed once
per chunk, rows without evidence one by one (the sign-up service commits). The columns and
how each cell is checked: `mailer.subscribers.import_rows`; what the report counts and lists:
`mailer.subscribers.import_report`.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from mailer.consent import chain, ledger
from mailer.consent.models import ConsentEvent, ConsentEventType, ConsentSource
from mailer.database import utcnow
from mailer.delivery import suppressions
from mailer.delivery.models import BLOCKING, SuppressionReason
from mailer.subscribers import profiles, signup, status
from mailer.subscribers.import_report import ImportReport, Outcome
from mailer.subscribers.import_rows import (
    MAX_ID,
    BadFile,
    NotText,
    Row,
    RowParser,
    columns,
    lines,
    records,
)
from mailer.subscribers.models import Form, Subscriber, Subscription, SubscriptionStatus

__all__ = ["BadFile", "BadOption", "ImportOptions", "run"]

CHUNK = 500


class BadOption(BadFile):
    """An import option (form, topic) names something that does not exist."""


@dataclass(frozen=True)
class ImportOptions:
    form_id: int | None = None  # rows without evidence are sent the confirmation of this form
    topic: str | None = None  # topic slug for rows whose topics cell is empty
    actor: str | None = None  # who ran it, for the ledger ("apikey:3")
    import_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    locales: tuple[str, ...] = ("en", "nb", "da")
    default_locale: str = "en"  # for new subscribers whose row names none
    window_seconds: int = 600  # confirmation window (list bombing), as for sign-ups
    domain: str = "localhost"  # for Message-IDs of the confirmations
    truncate_ip: bool = False
    chunk_size: int = CHUNK


def run(session: Session, data: Iterable[bytes], options: ImportOptions) -> ImportReport:
    """Import every row of the CSV in `data` (a binary file or any iterable of byte lines,
    UTF-8, a BOM allowed). Raises `BadFile` (nothing imported) when the header is missing or
    names an unknown column, `BadOption` for an unknown form or topic.

    Commits (per chunk, and per row without evidence). Rerunning the same file is safe: rows
    already imported come out "unchanged" and nobody is mailed twice.
    """
    importer = _Importer(session, options)
    reader = csv.reader(lines(data))
    report = ImportReport(options.import_id)
    try:
        header = next(reader, None)
    except (csv.Error, NotText) as exc:
        raise BadFile("file", f"the header cannot be read: {exc}") from exc
    names = columns(header)
    chunk: list[Row] = []
    try:
        for line, cells in records(reader):
            report.rows += 1
            row = importer.parser.parse(line, names, cells)
            if not isinstance(row, Row):
                report.invalid += 1
                for field_name, message in row:
                    report.error(line, field_name, message)
                continue
            chunk.append(row)
            if len(chunk) >= options.chunk_size:
                importer.apply(chunk, report)
                chunk = []
    except (csv.Error, NotText) as exc:
        line = exc.line if isinstance(exc, NotText) else reader.line_num
        report.stopped_at_line = line
        report.error(line, "file", f"cannot be read from here on ({exc}); rows before it were")
    importer.apply(chunk, report)
    return report


class _Importer:
    def __init__(self, session: Session, options: ImportOptions) -> None:
        self.session = session
        self.options = options
        self.form: Form | None = None
        self.form_topics: tuple[str, ...] = ()
        if options.form_id is not None:
            self.form = session.get(Form, options.form_id) if options.form_id <= MAX_ID else None
            if self.form is None or not self.form.versions:
                raise BadOption("form", "no such form")
            self.form_topics = tuple(t.slug for t in self.form.topics)
        self._events: list[ConsentEvent] = []
        self.parser = RowParser(
            session, self.form, options.topic, options.locales, options.truncate_ip
        )
        self.topics = self.parser.topics
        if options.topic is not None and options.topic not in self.topics:
            raise BadOption("topic", f"unknown topic {options.topic!r}")

    def apply(self, rows: list[Row], report: ImportReport) -> None:
        """Rows in file order: evidence rows gathered into one transaction, which is committed
        before each row that goes through the sign-up service (it commits on its own)."""
        batch: list[Row] = []
        for row in rows:
            if row.evidence is not None:
                batch.append(row)
                continue
            self._commit(batch, report)
            batch = []
            self._without_evidence(row, report)
        self._commit(batch, report)

    def _blocked(self, emails: set[str]) -> dict[str, str]:
        """Address -> why it is skipped, for the addresses suppressed or erased."""
        reasons = {}
        for email, reason in suppressions.reasons(self.session, emails).items():
            if reason is SuppressionReason.ERASED:
                reasons[email] = "erased on request: only a fresh sign-up brings it back"
            elif reason in BLOCKING:
                reasons[email] = f"suppressed ({reason.value})"
        return reasons

    def _commit(self, rows: list[Row], report: ImportReport) -> None:
        """Apply evidence rows in one transaction. A concurrent sign-up of a new address makes
        the insert fail: then the batch is rolled back and applied once more."""
        if not rows:
            return
        for attempt in (1, 2):
            self._events = []
            try:
                outcomes = self._with_evidence(rows)
                # One head lock per batch: the events keep file order in the chain.
                chain.append_many(self.session, self._events)
                self.session.commit()
                break
            except IntegrityError:
                self.session.rollback()
                if attempt == 2:
                    raise
        for outcome in outcomes:
            outcome.count(report)

    def _with_evidence(self, rows: list[Row]) -> list[Outcome]:
        """New addresses first, inserted together (one flush), then their events; then the
        rest in file order (a repeated address is then an existing subscriber)."""
        blocked = self._blocked({r.email for r in rows})
        ids = dict(
            self.session.execute(
                select(Subscriber.email, Subscriber.id).where(
                    Subscriber.email.in_({r.email for r in rows})
                )
            ).all()
        )
        outcomes, new, rest = [], {}, []
        for row in rows:
            if row.email in blocked:
                outcomes.append(Outcome("skipped", row.line, blocked[row.email]))
            elif row.email in ids or row.email in new:
                rest.append(row)
            else:
                new[row.email] = (row, self._new_active(row))
        self.session.add_all([subscriber for _, subscriber in new.values()])
        self.session.flush()
        for row, subscriber in new.values():
            self._record(subscriber, list(row.topics), row)
            ids[row.email] = subscriber.id
            outcomes.append(Outcome("created_active", row.line))
        outcomes += [self._evidence_existing(row, ids[row.email]) for row in rest]
        return outcomes

    def _new_active(self, row: Row) -> Subscriber:
        ev = row.evidence
        subscriber = Subscriber(
            email=row.email,
            name=row.name or "",
            locale=row.locale or self.options.default_locale,
            attributes=dict(row.attributes),
            source_form_id=ev.version_form_id,
            confirmed_at=ev.consent_at,
        )
        for slug in row.topics:
            subscriber.subscriptions.append(
                Subscription(
                    topic_id=self.topics[slug],
                    status=SubscriptionStatus.ACTIVE,
                    confirmed_at=ev.consent_at,
                )
            )
        status.refresh(subscriber)
        return subscriber

    def _evidence_existing(self, row: Row, subscriber_id: int) -> Outcome:
        subscriber = status.lock(self.session, subscriber_id)
        profile_changed = self._update_profile(subscriber, row)
        if profile_changed is None:
            return Outcome("invalid", row.line, TOO_MANY_ATTRIBUTES, "attributes")
        ev = row.evidence
        by_topic = {s.topic_id: s for s in subscriber.subscriptions}
        activated, refused = [], []
        for slug in row.topics:
            sub = by_topic.get(self.topics[slug])
            if sub is None:
                sub = Subscription(topic_id=self.topics[slug])
                subscriber.subscriptions.append(sub)
            elif sub.status is SubscriptionStatus.ACTIVE:
                continue
            elif sub.status is SubscriptionStatus.UNSUBSCRIBED and sub.updated_at >= ev.consent_at:
                refused.append(slug)
                continue
            sub.status = SubscriptionStatus.ACTIVE
            sub.confirmed_at = ev.consent_at
            activated.append(slug)
        note = (
            f"kept unsubscribed from {', '.join(refused)}: withdrawn after consent_at"
            if refused
            else None
        )
        if activated:
            if subscriber.confirmed_at is None:
                subscriber.confirmed_at = ev.consent_at
            status.refresh(subscriber)
            self.session.flush()
            self._record(subscriber, activated, row)
        if activated or profile_changed:
            return Outcome("updated", row.line, note)
        if refused:
            return Outcome("skipped", row.line, note)
        return Outcome("unchanged", row.line)

    def _update_profile(self, subscriber: Subscriber, row: Row) -> bool | None:
        """Name, locale and attributes from the row (empty cells change nothing). Whether
        anything changed; None when the attributes would exceed the limit."""
        changed = False
        if row.attributes:
            try:
                merged = profiles.merge_attributes(subscriber.attributes or {}, row.attributes)
            except profiles.InvalidAttributes:
                return None
            if merged != (subscriber.attributes or {}):
                subscriber.attributes = merged
                changed = True
        if row.name is not None and row.name != subscriber.name:
            subscriber.name = row.name
            changed = True
        if row.locale is not None and row.locale != subscriber.locale:
            subscriber.locale = row.locale
            changed = True
        return changed

    def _record(self, subscriber: Subscriber, slugs: list[str], row: Row) -> None:
        ev = row.evidence
        evidence: dict[str, Any] = {
            "method": "import",
            "import_id": self.options.import_id,
            "line": row.line,
            "consent_at": ev.consent_at.isoformat(),
            "consent_source": ev.source,
        }
        if ev.text is not None:
            evidence["consent_text"] = ev.text  # no form version holds it: the proof is here
        self._events.append(
            ConsentEvent(
                type=ConsentEventType.IMPORTED,
                subscriber_id=subscriber.id,
                email=subscriber.email,
                topics=sorted(slugs),
                lawful_basis="consent",
                form_id=ev.version_form_id,
                form_version_id=ev.version_id,
                consent_text_sha256=ev.sha256,
                locale=row.locale or subscriber.locale,
                source=ConsentSource.IMPORT,
                ip=ev.ip,
                evidence=evidence,
                actor=self.options.actor,
                occurred_at=utcnow(),
            ),
        )

    def _without_evidence(self, row: Row, report: ImportReport) -> None:
        """A pending request and a confirmation email, through the sign-up service."""
        reason = self._blocked({row.email}).get(row.email)
        if reason:
            report.skip(row.line, reason)
            return
        if self.form is None:
            report.invalid += 1
            report.error(
                row.line,
                "form",
                "this row has no consent evidence, so it is sent a confirmation: "
                "pass the form to send it from",
            )
            return
        slugs = row.topics or (self.form_topics if len(self.form_topics) == 1 else ())
        off_form = [s for s in slugs if s not in self.form_topics]
        if not slugs or off_form:
            report.invalid += 1
            report.error(
                row.line,
                "topics",
                f"not on form {self.form.slug}: {', '.join(off_form)}"
                if off_form
                else f"form {self.form.slug} has several topics: name them",
            )
            return
        found = self.session.scalars(
            select(Subscriber)
            .where(Subscriber.email == row.email)
            .options(selectinload(Subscriber.subscriptions))
            .execution_options(populate_existing=True)
        ).first()
        wanted, refused = list(slugs), []
        if found is not None:
            try:  # checked now, applied after the sign-up service has committed
                profiles.merge_attributes(found.attributes or {}, row.attributes)
            except profiles.InvalidAttributes:
                Outcome("invalid", row.line, TOO_MANY_ATTRIBUTES, "attributes").count(report)
                return
            have = {s.topic_id: s.status for s in found.subscriptions}
            wanted = [s for s in slugs if self.topics[s] not in have]
            refused = [
                s for s in slugs if have.get(self.topics[s]) is SubscriptionStatus.UNSUBSCRIBED
            ]
        if wanted:
            signup.request_subscription(
                self.session,
                signup.SignupRequest(
                    form_id=self.form.id,
                    email=row.email,
                    name=row.name or "",
                    topic_slugs=wanted,
                    visit=ledger.Visit(locale=row.locale),
                    evidence={
                        "channel": "import",
                        "import_id": self.options.import_id,
                        "line": str(row.line),
                    },
                    source=ConsentSource.IMPORT,
                ),
                self.options.window_seconds,
                self.options.domain,
            )
        subscriber = self.session.scalar(select(Subscriber).where(Subscriber.email == row.email))
        changed = bool(self._update_profile(subscriber, row))
        self.session.commit()
        note = (
            f"kept unsubscribed from {', '.join(refused)}: only the person can subscribe again"
            if refused
            else None
        )
        if found is None:
            kind = "created_pending"
        elif wanted or changed:
            kind = "updated"
        else:
            kind = "skipped" if refused else "unchanged"
        Outcome(kind, row.line, note).count(report)


TOO_MANY_ATTRIBUTES = f"a subscriber has at most {profiles.MAX_KEYS} attributes"
