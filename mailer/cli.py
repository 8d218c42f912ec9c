"""The `mailer` command: run everything, run a worker, migrate, manage users and API keys."""

from __future__ import annotations

import getpass
import importlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, routes_command, shell_command
from sqlalchemy import select

from mailer import config as config_module
from mailer import create_app, migrate
from mailer.accounts import users
from mailer.accounts.models import Role, User
from mailer.compliance import (
    access,
    access_zip,
    audit_export,
    erasure,
    receipts,
    staff_log,
    verification,
)
from mailer.consent import chain
from mailer.consent.models import ConsentEventType
from mailer.emails import mjml
from mailer.extensions import db
from mailer.public.visitor import origin_of
from mailer.subscribers import forms
from mailer.subscribers.schemas import normalise_email
from mailer.tracking import ingest

ROLES = click.Choice([r.value for r in Role])


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


def _settings() -> config_module.Settings:
    return current_app.config["MAILER"]


def _cli_staff(actor: str | None = None) -> staff_log.Staff:
    """Who ran a command, as the staff audit log records it: `--actor` where the command has
    one, else the operating-system user, marked as the command line."""
    if not actor:
        try:
            actor = getpass.getuser()
        except (KeyError, OSError):  # no login name and no passwd entry (some containers)
            actor = "unknown"
    return staff_log.Staff(api_key_name=f"cli:{actor}"[:200])


def _record(
    action: str,
    command: str,
    subject_email: str | None = None,
    details: dict | None = None,
    actor: str | None = None,
) -> None:
    """Put a command's access to personal data on the staff audit log, before any output."""
    staff_log.record(
        db.session,
        _cli_staff(actor),
        action,
        f"cli mailer {command}",
        subject_email=subject_email,
        details=details,
    )


def _address(email: str) -> str:
    try:
        return normalise_email(email)
    except ValueError as exc:
        raise click.BadParameter("not a valid email address", param_hint="EMAIL") from exc


@cli.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (alembic upgrade head)."""
    migrate.upgrade(_settings().database_url)
    click.echo("database is up to date")


@cli.group("users")
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


@cli.group("apikey")
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


@cli.group("consent")
def consent_group() -> None:
    """The consent ledger."""


@consent_group.command("verify")
def consent_verify() -> None:
    """Walk the hash chain; exit 1 at the first broken, missing or reordered row."""
    # The same walk as the admin page's; the outcome is kept on the staff audit log.
    report = verification.run(db.session, _cli_staff(), "cli mailer consent verify")
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
    _record(
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


@cli.group("subjects")
def subjects_group() -> None:
    """Data subjects' rights (GDPR)."""


@subjects_group.command("erase")
@click.argument("email")
@click.option("--actor", required=True, help="Who asked for it and who ran it, for the ledger.")
def subjects_erase(email: str, actor: str) -> None:
    """Erase an address's personal data; the pseudonymised proof of consent stays."""
    address = _address(email)
    _record("subject.erase", "subjects erase", address, actor=actor)
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
    _record("subject.export", "subjects export", address, details={"format": fmt})
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
    _record("subject.receipt", "subjects receipt", address)
    _print_subject_document(
        lambda: receipts.receipt(db.session, address, _settings().controller),
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


@cli.group("bounces")
def bounces_group() -> None:
    """Bounces and complaints."""


@bounces_group.command("ingest")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def bounces_ingest(path: Path) -> None:
    """Record DSN bounces and ARF complaints from a message file, an mbox or a Maildir.

    The mailbox is only read; feeding it in again records nothing twice."""
    report = ingest.ingest_path(db.session, path, _settings().secret_key)
    click.echo(
        f"{report.messages} messages read: {report.recorded} bounces or complaints recorded, "
        f"{report.repeated} already recorded, {report.ignored} with nothing to record"
    )


@cli.command("demo")
def demo() -> None:
    """Create the demo topic and the English demo form at /subscribe/demo."""
    forms.ensure_demo(db.session, origin_of(_settings().base_url))
    click.echo("demo form ready at /subscribe/demo")


@cli.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
def worker(burst: bool) -> None:
    """Run an RQ worker (run as many as you like, on as many machines as you like)."""
    mjml.require_node(_settings().node_binary)
    # Imported by path: the mailer package never imports workers.
    importlib.import_module("workers.main").run(current_app._get_current_object(), burst=burst)


@cli.command("cron")
def cron() -> None:
    """Run RQ's cron scheduler for periodic jobs (one per deployment is enough)."""
    importlib.import_module("workers.cron").run(current_app._get_current_object())


def _first_admin(settings: config_module.Settings) -> str:
    """Create admin@<host> with a random password on first run; say how to sign in."""
    if db.session.scalar(select(User.id).limit(1)) is not None:
        note = settings.instance_path / "first-admin.txt"
        return note.read_text().strip() if note.exists() else "(existing users; see `mailer users`)"
    email = "admin@example.com"
    password = secrets.token_urlsafe(12)
    users.create_user(db.session, email, password, Role.ADMIN)
    line = f"{email} / {password}"
    note = settings.instance_path / "first-admin.txt"
    fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(line + "\n")
    return line


@cli.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """Everything on embedded defaults: web app, one worker, Redis, mail catcher, SQLite."""
    app = current_app._get_current_object()
    if not _settings().base_url_explicit:
        # Links in emails must point where we serve; the worker inherits the variable.
        link_host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
        os.environ["MAILER_BASE_URL"] = f"http://{link_host}:{port}"
        app = create_app()
    with app.app_context():
        _run_all(app, host, port)


def _run_all(app: Flask, host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    from mailer import embedded
    from mailer.devmail.catcher import Catcher

    settings = app.config["MAILER"]
    mjml.require_node(settings.node_binary)
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    redis_proc = None
    catcher = None
    children: list[subprocess.Popen] = []
    try:
        if settings.redis_embedded:
            redis_proc = embedded.start_redis(
                settings.instance_path / "redis.sock", settings.instance_path
            )
        if settings.smtp_catcher:
            catcher = Catcher(settings.instance_path / "outbox", port=settings.catcher_port).start()
        migrate.upgrade(settings.database_url)
        forms.ensure_demo(db.session, origin_of(settings.base_url))
        login = _first_admin(settings)
        for command in ("worker", "cron"):
            children.append(subprocess.Popen([sys.executable, "-m", "mailer.cli", command]))
        base = f"http://{host}:{port}"
        click.echo(
            "\nmailer is running\n"
            f"  sign-up form   {base}/subscribe/demo\n"
            f"  admin          {base}/admin/   ({login})\n"
            + (
                f"  outbox         {base}/admin/outbox/  (mail caught on 127.0.0.1:"
                f"{settings.catcher_port})\n"
                if catcher
                else f"  mail goes to   {urlsplit(settings.smtp_url).hostname}\n"
            )
            + f"  database       {settings.database_url.split('@')[-1]}\n"
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        run_simple(
            host,
            port,
            app,
            threaded=True,
            use_reloader=False,
            use_debugger=False,
        )
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=20)
        if catcher is not None:
            catcher.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=20)


def main() -> None:
    try:
        cli(prog_name="mailer")
    except config_module.ConfigError as exc:
        click.echo(f"mailer: configuration error: {exc}", err=True)
        raise SystemExit(2) from None
    except mjml.MjmlUnavailable as exc:
        click.echo(f"mailer: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
