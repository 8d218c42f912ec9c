"""The processes a deployment runs, and what they need first: `mailer run` (everything on
embedded defaults, for trying mailer out), `mailer worker`, `mailer cron`, `mailer db upgrade`
and `mailer demo`."""

from __future__ import annotations

import importlib
import os
import secrets
import signal
import subprocess
import sys
from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from mailer import config as config_module
from mailer import create_app, migrate
from mailer.accounts import users
from mailer.accounts.models import Role, User
from mailer.emails import mjml
from mailer.extensions import db
from mailer.public.visitor import origin_of
from mailer.subscribers import forms


def _settings() -> config_module.Settings:
    return current_app.config["MAILER"]


@click.group("db", cls=AppGroup)
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (alembic upgrade head)."""
    migrate.upgrade(_settings().database_url)
    click.echo("database is up to date")


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Create the demo topic and the English demo form at /subscribe/demo."""
    forms.ensure_demo(db.session, origin_of(_settings().base_url))
    click.echo("demo form ready at /subscribe/demo")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@with_appcontext
def worker(burst: bool) -> None:
    """Run an RQ worker (run as many as you like, on as many machines as you like)."""
    mjml.require_node(_settings().node_binary)
    # Imported by path: the mailer package never imports workers.
    importlib.import_module("workers.main").run(current_app._get_current_object(), burst=burst)


@click.command("cron")
@with_appcontext
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


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
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
