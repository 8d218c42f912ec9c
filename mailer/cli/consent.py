"""`mailer consent`: check, export and anchor the consent ledger."""

from __future__ import annotations

from datetime import UTC

import click
from flask.cli import AppGroup

from mailer.cli.staff import cli_staff, record
from mailer.compliance import audit_export, verification
from mailer.consent import chain
from mailer.consent.models import ConsentEventType
from mailer.extensions import db


@click.group("consent", cls=AppGroup)
def consent_group() -> None:
    """The consent ledger."""


@consent_group.command("verify")
def consent_verify() -> None:
    """Walk the hash chain; exit 1 at the first broken, missing or reordered row."""
    # The same walk as the admin page's; the outcome is kept on the staff audit log.
    report = verification.run(db.session, cli_staff(), "cli mailer consent verify")
    if report.ok:
        click.echo(
            f"ledger OK: {report.checked} events, {report.anchors_checked} anchors checked; "
            f"head seq {report.head_seq} {report.head_hash}"
        )
        return
    click.echo(f"ledger BROKEN after {report.checked} good events: {report.problem}", err=True)
    raise SystemExit(1)


@consent_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv")
@click.option("--since", type=click.DateTime(), help="From this UTC time (inclusive).")
@click.option("--until", type=click.DateTime(), help="Before this UTC time.")
@click.option(
    "--type", "types", multiple=True, type=click.Choice([t.value for t in ConsentEventType])
)
@click.option("--topic", help="Only events naming this topic slug.")
@click.option("--form", "form_id", type=int, help="Only events from this form id.")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
def consent_export(fmt, since, until, types, topic, form_id, output) -> None:
    """Stream the consent audit (documented, stable columns) as CSV or JSON Lines."""
    flt = audit_export.Filter(
        since=since.replace(tzinfo=UTC) if since else None,
        until=until.replace(tzinfo=UTC) if until else None,
        types=tuple(ConsentEventType(t) for t in types),
        topic=topic,
        form_id=form_id,
    )
    record(
        "consent.export",
        "consent export",
        details={
            "format": fmt,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "type": list(types),
            "topic": topic,
            "form": form_id,
        },
    )
    count = audit_export.write(db.session, flt, output, fmt)
    click.echo(f"{count} events exported", err=True)


@consent_group.command("anchor")
def consent_anchor() -> None:
    """Record the current head hash with a timestamp, and print it to keep elsewhere."""
    anchor = chain.record_anchor(db.session)
    click.echo(f"{anchor.created_at.isoformat()} seq {anchor.seq} {anchor.head_hash}")
