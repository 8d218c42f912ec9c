"""`mailer users` and `mailer apikey`: staff accounts and API keys."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from mailer.accounts import users
from mailer.accounts.models import Role
from mailer.extensions import db

ROLES = click.Choice([r.value for r in Role])


@click.group("users", cls=AppGroup)
def users_group() -> None:
    """Staff accounts."""


@users_group.command("create")
@click.argument("email")
@click.option("--role", type=ROLES, required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(email: str, role: str, password_stdin: bool) -> None:
    """Create a user, or reset an existing user's password and role."""
    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = users.create_user(db.session, email, password, Role(role))
    except users.AccountError as exc:
        raise click.BadParameter(exc.message, param_hint=exc.field) from exc
    click.echo(f"user {user.email} ({user.role.value}) is ready")


@click.group("apikey", cls=AppGroup)
def apikey_group() -> None:
    """API keys for the REST API."""


@apikey_group.command("create")
@click.option("--role", type=ROLES, required=True)
@click.option("--name", default="", help="What the key is for.")
def apikey_create(role: str, name: str) -> None:
    """Create a key and print it once; only its hash is stored."""
    row, secret = users.create_api_key(db.session, Role(role), name)
    click.echo(secret)
    click.echo(f"key {row.prefix}... ({row.role.value}) created; it is not shown again", err=True)
