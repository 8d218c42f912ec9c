"""What an import reports: rows counted by what became of them, and the first errors and
skipped rows listed with their line, so a large bad file gives a readable report.

A row's outcome is counted only once its transaction has committed (`Outcome.count`), so the
report never claims a row that a rollback undid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_LISTED = 1000  # row errors and skipped rows listed in the report; the rest are counted


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str


@dataclass(frozen=True)
class Skipped:
    line: int
    reason: str


@dataclass
class ImportReport:
    import_id: str
    rows: int = 0
    created_active: int = 0
    created_pending: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    invalid: int = 0
    errors: list[RowError] = field(default_factory=list)
    skipped_rows: list[Skipped] = field(default_factory=list)
    # The file stopped being readable here (bad encoding, broken quoting): rows after it
    # were not imported; rows before it were.
    stopped_at_line: int | None = None

    def error(self, line: int, field_name: str, message: str) -> None:
        if len(self.errors) < MAX_LISTED:
            self.errors.append(RowError(line, field_name, message))

    def skip(self, line: int, reason: str, counted: bool = True) -> None:
        if counted:
            self.skipped += 1
        if len(self.skipped_rows) < MAX_LISTED:
            self.skipped_rows.append(Skipped(line, reason))


@dataclass(frozen=True)
class Outcome:
    """What became of one row; counted only once its transaction has committed."""

    kind: str  # created_active | created_pending | updated | unchanged | skipped | invalid
    line: int
    note: str | None = None
    field: str | None = None  # for invalid rows

    def count(self, report: ImportReport) -> None:
        if self.kind == "invalid":
            report.invalid += 1
            report.error(self.line, self.field or "row", self.note or "")
        elif self.kind == "skipped":
            report.skip(self.line, self.note or "")
        else:
            setattr(report, self.kind, getattr(report, self.kind) + 1)
            if self.note:
                report.skip(self.line, self.note, counted=False)
