"""Column mapping for CSV imports from the admin pages: a spreadsheet's own columns ("E-mail",
"First name", "City") mapped onto the columns the importer understands (`email`, `name`,
`attr.city`, the consent evidence columns), and the file rewritten on the fly in that shape.

The importer (`mailer.subscribers.importer`) stays the one place that decides what a row
becomes; this module only renames, drops and reorders cells. Line numbers survive the
rewrite (a dropped multi-line cell is made up for with blank lines, which the importer
skips), so every problem the importer reports points at the line of the uploaded file.
Nothing here touches the database.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence

from mailer.subscribers import import_rows, profiles

IGNORE = ""
ATTRIBUTE = "attribute"
# What a column may become, in the order the mapping form offers them.
TARGETS: tuple[tuple[str, str], ...] = (
    (IGNORE, "Ignore"),
    ("email", "Email address"),
    ("name", "Name"),
    ("locale", "Locale (language)"),
    ("topics", "Topics (slugs, separated by ;)"),
    ("consent_at", "Evidence: consent given at (date/time)"),
    ("consent_source", "Evidence: where and how"),
    ("consent_text", "Evidence: exact consent text shown"),
    ("form_version_id", "Evidence: form version id"),
    ("consent_ip", "Evidence: IP address"),
    (ATTRIBUTE, "Attribute"),
)
FIELDS = tuple(value for value, _ in TARGETS if value not in (IGNORE, ATTRIBUTE))
DELIMITERS = (",", ";", "\t")

# Spellings seen in spreadsheet and CRM exports, for a first guess at the mapping.
_ALIASES = {
    "email": {"email", "e-mail", "emailaddress", "e-mailaddress", "mail", "epost", "e-post"},
    "name": {"name", "firstname", "fullname", "navn", "fornavn"},
    "locale": {"locale", "language", "lang", "sprog", "språk"},
    "topics": {"topics", "topic", "lists", "list"},
    "consent_at": {"consentat", "consentdate", "consentgivenat", "optinat", "optindate"},
    "consent_source": {"consentsource", "source"},
    "consent_text": {"consenttext", "consentstatement"},
    "form_version_id": {"formversionid", "formversion"},
    "consent_ip": {"consentip", "ip", "ipaddress", "optinip"},
}


def _squash(name: str) -> str:
    return re.sub(r"[\s_.]+", "", name.strip().lower())


def guess(columns: Sequence[str]) -> list[str]:
    """A first mapping: known names become their field, `attr.<key>` an attribute; any other
    column is ignored until someone decides to keep it (keep only what is needed)."""
    mapping: list[str] = []
    taken: set[str] = set()
    for column in columns:
        target = IGNORE
        stripped = column.strip()
        if stripped.lower().startswith(import_rows.ATTR):
            key = stripped[len(import_rows.ATTR) :]
            if key and not profiles.check_attribute(key, ""):
                target = import_rows.ATTR + key
        else:
            squashed = _squash(stripped)
            for field, aliases in _ALIASES.items():
                if squashed in aliases:
                    target = field
                    break
        if target in taken:
            target = IGNORE
        if target:
            taken.add(target)
        mapping.append(target)
    return mapping


def attribute_key(column: str) -> str:
    """A suggested attribute name for a column: its name in lower case, spaces as `_`."""
    key = re.sub(r"\s+", "_", column.strip().lower())
    return key[: profiles.MAX_KEY_LENGTH] or "attribute"


def check(mapping: Sequence[str], columns: Sequence[str]) -> dict[str, list[str]]:
    """Problems with a mapping, by form field (`column-<i>` for one column's choice, `mapping`
    for the whole). Empty when the importer can read the rewritten file."""
    errors: dict[str, list[str]] = {}
    if len(mapping) != len(columns):
        return {"mapping": ["map every column of the file"]}
    seen: dict[str, int] = {}
    attributes = 0
    for index, target in enumerate(mapping):
        if target == IGNORE:
            continue
        field = f"column-{index}"
        if target.startswith(import_rows.ATTR):
            attributes += 1
            problem = profiles.check_attribute(target[len(import_rows.ATTR) :], "")
            if problem:
                errors[field] = next(iter(problem.values()))
                continue
        elif target not in FIELDS:
            errors[field] = ["choose what this column is, or ignore it"]
            continue
        if target in seen:
            errors[field] = [f"column {seen[target] + 1} is already mapped to this"]
            continue
        seen[target] = index
    if "email" not in seen:
        errors.setdefault("mapping", []).append("one column must be the email address")
    if attributes > profiles.MAX_KEYS:
        errors.setdefault("mapping", []).append(f"at most {profiles.MAX_KEYS} attributes")
    return errors


def header(mapping: Sequence[str]) -> list[str]:
    """The importer's column names, for the columns kept."""
    return [target for target in mapping if target != IGNORE]


def _line(cells: Sequence[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode("utf-8")


def sniff(first_line: str) -> str:
    """The cell separator of a header line: the one of `,`, `;` and tab it has most of."""
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_header(data: Iterable[bytes], delimiter: str) -> list[str] | None:
    """The first record of the file (None for an empty file). Raises `import_rows.NotText`
    or `csv.Error`."""
    reader = csv.reader(import_rows.lines(data), delimiter=delimiter)
    return next(reader, None)


def records(
    data: Iterable[bytes], delimiter: str, limit: int | None = None
) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of the data rows as uploaded, after the header."""
    reader = csv.reader(import_rows.lines(data), delimiter=delimiter)
    if next(reader, None) is None:
        return
    for count, record in enumerate(import_rows.records(reader), 1):
        if limit is not None and count > limit:
            return
        yield record


def pick(mapping: Sequence[str], cells: Sequence[str]) -> list[str]:
    """The kept cells of one row, in the order of `header(mapping)`. Cells beyond the header
    are passed on, so the importer reports the row as malformed instead of losing data."""
    kept = [cells[i] if i < len(cells) else "" for i, t in enumerate(mapping) if t != IGNORE]
    return kept + list(cells[len(mapping) :])


def remap(
    data: Iterable[bytes],
    mapping: Sequence[str],
    delimiter: str = ",",
    on_row: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The uploaded file as the importer reads it: the mapped header, then each row's kept
    cells, each on the line it started on in the upload. `on_row(n)` is called as the n-th
    data row is handed over (for progress). A line that is not UTF-8 raises
    `import_rows.NotText` with its line number in the upload, as the importer expects."""
    reader = csv.reader(import_rows.lines(data), delimiter=delimiter)
    if next(reader, None) is None:
        return
    yield _line(header(mapping))
    given = 1
    for count, (start, cells) in enumerate(import_rows.records(reader), 1):
        while given < start - 1:
            yield b"\n"
            given += 1
        if on_row is not None:
            on_row(count)
        yield _line(pick(mapping, cells))
        given += 1
