"""Content problems as an editor shows them: each message with the source line it is on.

The checks (`content.build_content`, the MJML compiler, the sandbox) report problems as text
per field: "unknown variable 'x' at line 3", "line 7: mj-text cannot contain ...", or
"... (in the compiled HTML, line 40)". An editor wants the line of the source the marketer
wrote, to mark it beside the text; lines of the compiled HTML are not lines of that source,
so they are kept in the message but not pointed at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_AT_LINE = re.compile(r" at line (\d+)$")
_MJML_LINE = re.compile(r"^line (\d+): ")

# How each field is named to a marketer.
FIELD_LABELS = {
    "mjml": "MJML",
    "text": "Text part",
    "subject": "Subject",
    "preheader": "Preheader",
    "name": "Name",
    "headers": "Headers",
}


@dataclass(frozen=True)
class Located:
    field: str
    line: int | None  # a line of the field's own source, when the message names one
    message: str

    @property
    def label(self) -> str:
        return FIELD_LABELS.get(self.field, self.field)


def locate(errors: Mapping[str, Sequence[str]]) -> list[Located]:
    """Every problem, with its source line when it has one, in line order per field."""
    found = []
    for field, messages in errors.items():
        for message in messages:
            line = None
            match = _AT_LINE.search(message) or _MJML_LINE.search(message)
            if match:
                line = int(match.group(1))
            found.append(Located(field, line, message))
    order = {field: i for i, field in enumerate(errors)}
    found.sort(key=lambda p: (order[p.field], p.line or 0))
    return found
