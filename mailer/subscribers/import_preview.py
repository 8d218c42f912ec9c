"""What the first rows of a mapped import would become, before anything is written.

Each row is checked by the importer's own row parser (`import_rows.RowParser`), then given
the outcome the importer would give it: active with its evidence, pending with a
confirmation email, skipped (suppressed or erased), or the problems that reject it. A
preview, not a promise: the import itself decides, row by row, when it runs. Read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.delivery.models import BLOCKING, Suppression, SuppressionReason
from mailer.pseudonyms import keyed
from mailer.subscribers import import_mapping, import_rows
from mailer.subscribers.models import Form, Subscriber

NO_FORM = (
    "no consent evidence, so this row gets a confirmation email: choose the form to send it from"
)


@dataclass(frozen=True)
class PreviewRow:
    line: int
    cells: list[str]  # the kept cells, in the order of `import_mapping.header`
    outcome: str  # active | pending | update | skipped | invalid
    note: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)  # (importer field, message)


@dataclass(frozen=True)
class PreviewOptions:
    mapping: Sequence[str]
    delimiter: str = ","
    form_id: int | None = None
    topic: str | None = None
    locales: tuple[str, ...] = ("en",)
    truncate_ip: bool = False


def _blocked(session: Session, emails: set[str]) -> dict[str, str]:
    digests = {keyed(session, e): e for e in emails}
    found = session.execute(
        select(Suppression.email_hmac, Suppression.reason).where(
            Suppression.email_hmac.in_(digests)
        )
    ).all()
    reasons = {}
    for digest, reason in found:
        if reason is SuppressionReason.ERASED:
            reasons[digests[digest]] = "erased on request: skipped"
        elif reason in BLOCKING:
            reasons[digests[digest]] = f"suppressed ({reason.value}): skipped"
    return reasons


def preview(
    session: Session, data: Iterable[bytes], options: PreviewOptions, limit: int = 10
) -> list[PreviewRow]:
    """The first `limit` data rows of the uploaded file, mapped and checked. Raises
    `import_rows.NotText` or `csv.Error` when the file cannot be read that far."""
    form = session.get(Form, options.form_id) if options.form_id is not None else None
    form_topics = [t.slug for t in form.topics] if form is not None else []
    parser = import_rows.RowParser(
        session, form, options.topic, options.locales, options.truncate_ip
    )
    names = import_rows.columns(import_mapping.header(options.mapping))
    parsed = []
    for line, cells in import_mapping.records(data, options.delimiter, limit):
        kept = import_mapping.pick(options.mapping, cells)
        parsed.append((line, kept, parser.parse(line, names, kept)))
    emails = {row.email for _, _, row in parsed if isinstance(row, import_rows.Row)}
    existing = set(session.scalars(select(Subscriber.email).where(Subscriber.email.in_(emails))))
    blocked = _blocked(session, emails)
    result = []
    for line, kept, row in parsed:
        if not isinstance(row, import_rows.Row):
            result.append(PreviewRow(line, kept, "invalid", problems=list(row)))
        elif row.email in blocked:
            result.append(PreviewRow(line, kept, "skipped", blocked[row.email]))
        elif row.evidence is not None:
            if row.email in existing:
                result.append(PreviewRow(line, kept, "update", "existing subscriber: evidence"))
            else:
                result.append(PreviewRow(line, kept, "active", "new, with evidence of consent"))
        else:
            result.append(_without_evidence(line, kept, row, form, form_topics, existing))
    return result


def _without_evidence(
    line: int,
    kept: list[str],
    row: import_rows.Row,
    form: Form | None,
    form_topics: list[str],
    existing: set[str],
) -> PreviewRow:
    """The importer's rules for a row without evidence (see `importer._without_evidence`)."""
    if form is None:
        return PreviewRow(line, kept, "invalid", problems=[("form", NO_FORM)])
    slugs = row.topics or (tuple(form_topics) if len(form_topics) == 1 else ())
    off_form = [s for s in slugs if s not in form_topics]
    if off_form:
        problem = f"not on form {form.slug}: {', '.join(off_form)}"
        return PreviewRow(line, kept, "invalid", problems=[("topics", problem)])
    if not slugs:
        problem = f"form {form.slug} has several topics: name them"
        return PreviewRow(line, kept, "invalid", problems=[("topics", problem)])
    if row.email in existing:
        return PreviewRow(line, kept, "update", "existing subscriber: asked only for new topics")
    return PreviewRow(line, kept, "pending", "new, pending: gets a confirmation email")
