"""The `mailer` command: run everything, run a worker, migrate, manage users and API keys.

The root group lives here (the `mailer` console script is `mailer.cli:main`, and
`python -m mailer.cli` runs it too); each command group is in the module of its domain."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup, routes_command, shell_command

from mailer import config as config_module
from mailer import create_app
from mailer.cli import accounts, bounces, consent, stack, subjects
from mailer.emails import mjml


def _app(*_args: object) -> object:
    return create_app()


@click.group(
    cls=FlaskGroup,
    create_app=_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
)
def cli() -> None:
    """mailer: permission-based email with a consent ledger."""


cli.add_command(shell_command)
cli.add_command(routes_command)
for _command in (
    stack.db_group,
    accounts.users_group,
    accounts.apikey_group,
    consent.consent_group,
    subjects.subjects_group,
    bounces.bounces_group,
    stack.demo,
    stack.worker,
    stack.cron,
    stack.run,
):
    cli.add_command(_command)


def main() -> None:
    try:
        cli(prog_name="mailer")
    except config_module.ConfigError as exc:
        click.echo(f"mailer: configuration error: {exc}", err=True)
        raise SystemExit(2) from None
    except mjml.MjmlUnavailable as exc:
        click.echo(f"mailer: {exc}", err=True)
        raise SystemExit(2) from None
