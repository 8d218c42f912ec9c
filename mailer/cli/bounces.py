"""`mailer bounces`: bounces (DSN) and complaints (ARF) recorded from a mailbox on disk."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from mailer.extensions import db
from mailer.tracking import ingest


@click.group("bounces", cls=AppGroup)
def bounces_group() -> None:
    """Bounces and complaints."""


@bounces_group.command("ingest")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def bounces_ingest(path: Path) -> None:
    """Record DSN bounces and ARF complaints from a message file, an mbox or a Maildir.

    The mailbox is only read; feeding it in again records nothing twice."""
    report = ingest.ingest_path(db.session, path, current_app.config["MAILER"].secret_key)
    click.echo(
        f"{report.messages} messages read: {report.recorded} bounces or complaints recorded, "
        f"{report.repeated} already recorded, {report.ignored} with nothing to record"
    )
