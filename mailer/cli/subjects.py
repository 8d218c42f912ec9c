"""`mailer subjects`: data subjects' rights (GDPR) from the command line: erasure, access and
portability, consent receipts. Each access is on the staff audit log before any output."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from mailer.cli.staff import record
from mailer.compliance import access, access_zip, erasure, receipts
from mailer.extensions import db
from mailer.subscribers.schemas import normalise_email


def _address(email: str) -> str:
    try:
        return normalise_email(email)
    except ValueError as exc:
        raise click.BadParameter("not a valid email address", param_hint="EMAIL") from exc


@click.group("subjects", cls=AppGroup)
def subjects_group() -> None:
    """Data subjects' rights (GDPR)."""


@subjects_group.command("erase")
@click.argument("email")
@click.option("--actor", required=True, help="Who asked for it and who ran it, for the ledger.")
def subjects_erase(email: str, actor: str) -> None:
    """Erase an address's personal data; the pseudonymised proof of consent stays."""
    address = _address(email)
    record("subject.erase", "subjects erase", address, actor=actor)
    try:
        result = erasure.erase(db.session, address, f"cli:{actor}")
    except erasure.NothingToErase:
        click.echo("nothing is held about that address", err=True)
        raise SystemExit(1) from None
    click.echo(
        f"erased: {result.events_pseudonymised} consent events pseudonymised, "
        f"withdrawn: {', '.join(result.withdrawn) or 'nothing active'}; "
        f"erasure recorded as event {result.erased_event_id}"
    )


@subjects_group.command("export")
@click.argument("email")
@click.option("--format", "fmt", type=click.Choice(["json", "zip"]), default="json")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="File to write (needed for zip); without it the JSON is printed.",
)
def subjects_export(email: str, fmt: str, output: Path | None) -> None:
    """Everything held about an address (Art. 15 access, Art. 20 portability): JSON, or a
    ZIP with one CSV per section."""
    if output is None and fmt == "zip":
        raise click.BadParameter("a ZIP needs a file to go to", param_hint="--output")
    address = _address(email)
    record("subject.export", "subjects export", address, details={"format": fmt})
    if output is None:
        _print_subject_document(lambda: access.export(db.session, address), "nothing is held")
        return
    try:
        document = access.export(db.session, address)
    except access.NothingHeld:
        click.echo("nothing is held for that address", err=True)
        raise SystemExit(1) from None
    if fmt == "zip":
        output.write_bytes(access_zip.archive(document))
    else:
        output.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    click.echo(f"written to {output}")


@subjects_group.command("receipt")
@click.argument("email")
def subjects_receipt(email: str) -> None:
    """Print the consent receipt (Kantara Consent Receipt v1.1 fields) for an address."""
    address = _address(email)
    record("subject.receipt", "subjects receipt", address)
    _print_subject_document(
        lambda: receipts.receipt(db.session, address, current_app.config["MAILER"].controller),
        "no confirmed consent is held",
    )


def _print_subject_document(build: Callable[[], dict], missing: str) -> None:
    try:
        document = build()
    except access.NothingHeld:
        click.echo(f"{missing} for that address", err=True)
        raise SystemExit(1) from None
    except ValueError as exc:
        raise click.BadParameter("not a valid email address", param_hint="EMAIL") from exc
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))
