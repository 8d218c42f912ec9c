"""MJML through the reference renderer (the npm package `mjml`), one Node process per compile.

Compiled HTML is stored by the SHA-256 of its source, so each template version is compiled
once; per-recipient personalisation happens afterwards, in Jinja, on the compiled HTML.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.config import ROOT
from mailer.emails.models import CompiledTemplate

SCRIPT = Path(__file__).with_name("mjml_compile.mjs")
TIMEOUT_SECONDS = 60


class MjmlUnavailable(RuntimeError):
    """Node.js or the mjml package is missing; the message says what to install."""


@dataclass(frozen=True)
class MjmlProblem:
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class MjmlError(ValueError):
    """The MJML source is invalid; `problems` name each line and what is wrong there."""

    def __init__(self, problems: list[MjmlProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Compiled:
    html: str
    version: str


def require_node(node: str = "node") -> str:
    """The path of a Node.js that can run the compiler; `MjmlUnavailable` says what to install.

    Workers call this at start, so a missing Node is one clear line, not a failed job."""
    node_path = shutil.which(node)
    if node_path is None:
        raise MjmlUnavailable(
            f"Node.js 20 or newer is needed to compile MJML ('{node}' was not found). "
            f"Install it (Debian: apt-get install nodejs npm), then run `npm ci` in {ROOT}."
        )
    if not (ROOT / "node_modules" / "mjml" / "package.json").exists():
        raise MjmlUnavailable(f"The mjml npm package is not installed: run `npm ci` in {ROOT}.")
    return node_path


def compile_mjml(source: str, node: str = "node") -> Compiled:
    """Compile strictly: any validation error is an `MjmlError` with line numbers."""
    node_path = require_node(node)
    proc = subprocess.run(
        [node_path, str(SCRIPT)],
        input=json.dumps({"mjml": source, "validationLevel": "strict"}),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise MjmlUnavailable(f"The MJML compiler failed to run: {tail[0]}")
    result = json.loads(proc.stdout)
    if result["errors"] or result["html"] is None:
        raise MjmlError(
            [MjmlProblem(e.get("line"), e.get("message", "")) for e in result["errors"]]
        )
    return Compiled(html=result["html"], version=result["version"])


# The most recently used compilations of this process. Bounded: the admin's live preview
# compiles a new source at every pause in typing.
_memory: OrderedDict[str, str] = OrderedDict()
MEMORY_ENTRIES = 64


def compiled_html(session: Session, source: str, node: str = "node") -> str:
    """The compiled HTML for `source`, compiling and storing it on first use.

    Uses its own short transaction on `session`'s connection pool, so the caller's pending
    work is neither committed nor rolled back. Two processes racing on a new version both
    compile; one insert wins and the other is dropped (the rows would be identical).
    """
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    if digest in _memory:
        _memory.move_to_end(digest)
        return _memory[digest]
    with Session(bind=session.get_bind()) as own:
        row = own.get(CompiledTemplate, digest)
        if row is None:
            compiled = compile_mjml(source, node)
            row = CompiledTemplate(
                source_sha256=digest, html=compiled.html, mjml_version=compiled.version
            )
            own.add(row)
            try:
                own.commit()
            except IntegrityError:
                own.rollback()
        html = row.html
    _memory[digest] = html
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)
    return html
