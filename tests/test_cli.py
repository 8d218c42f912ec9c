"""The `mailer` command as an operator uses it, and command 1 of the README (`mailer run`)."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from mailer.accounts.models import ApiKey, Role, User
from mailer.config import ROOT
from tests.services import free_port


def _mailer(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mailer.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli_env(settings) -> dict[str, str]:
    return {
        "MAILER_INSTANCE_PATH": str(settings.instance_path),
        "MAILER_DATABASE_URL": settings.database_url,
        "MAILER_REDIS_URL": settings.redis_url,
        "MAILER_SECRET_KEY": settings.secret_key,
        "MAILER_SMTP_URL": settings.smtp_url,
    }


def test_users_create_reads_the_password_from_stdin(cli_env, session):
    result = _mailer(
        cli_env,
        "users",
        "create",
        "Ops@Example.com",
        "--role",
        "compliance",
        stdin="correct horse battery staple\n",
    )
    assert result.returncode == 0, result.stderr
    user = session.scalar(select(User))
    assert user.email == "ops@example.com" and user.role is Role.COMPLIANCE
    assert "correct horse" not in user.password_hash

    short = _mailer(cli_env, "users", "create", "x@example.com", "--role", "admin", stdin="short\n")
    assert short.returncode != 0 and "12 characters" in short.stderr
    bad_role = _mailer(
        cli_env, "users", "create", "x@example.com", "--role", "root", stdin="x" * 20
    )
    assert bad_role.returncode != 0 and "root" in bad_role.stderr


def test_apikey_is_printed_once_and_stored_hashed(cli_env, session):
    result = _mailer(cli_env, "apikey", "create", "--role", "marketer", "--name", "CRM sync")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("mk_") and len(key) > 40
    row = session.scalar(select(ApiKey))
    assert row.role is Role.MARKETER and row.name == "CRM sync"
    assert row.key_sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert key not in repr(row.__dict__)


def test_db_upgrade_is_idempotent(cli_env):
    result = _mailer(cli_env, "db", "upgrade")
    assert result.returncode == 0 and "up to date" in result.stdout


def test_production_refuses_missing_secrets(tmp_path):
    result = _mailer(
        {"MAILER_ENV": "production", "MAILER_INSTANCE_PATH": str(tmp_path)}, "db", "upgrade"
    )
    assert result.returncode != 0
    assert result.returncode == 2
    assert "is required when MAILER_ENV=production" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_without_node_says_what_to_install(cli_env):
    result = _mailer({**cli_env, "MAILER_NODE": "node-that-is-not-installed"}, "worker", "--burst")
    assert result.returncode == 2
    assert "Node.js 20 or newer" in result.stderr and "apt-get install nodejs" in result.stderr
    assert "Traceback" not in result.stderr


def test_mailer_run_starts_everything_on_embedded_defaults(tmp_path, db_kind):
    """Command 1: SQLite, embedded Redis, the catcher with its Outbox, one worker, the web app."""
    if db_kind != "sqlite":
        pytest.skip("embedded defaults are SQLite; checked once")
    port, catcher = free_port(), free_port()
    env = {
        "MAILER_INSTANCE_PATH": str(tmp_path / "instance"),
        "MAILER_CATCHER_PORT": str(catcher),
    }
    # All unset: links must then follow --port (the README shows `scripts/run --port 8000`).
    for key in (
        "MAILER_DATABASE_URL",
        "MAILER_REDIS_URL",
        "MAILER_SMTP_URL",
        "MAILER_SECRET_KEY",
        "MAILER_BASE_URL",
    ):
        env[key] = ""
    log = (tmp_path / "run.log").open("w")  # a file, not a pipe nobody drains while it runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailer.cli", "run", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/subscribe/demo", proc)
        instance = tmp_path / "instance"
        assert (instance / "mailer.db").exists() and (instance / "redis.sock").exists()
        login = (instance / "first-admin.txt").read_text().split(" / ")
        signup = requests.post(
            f"{base}/subscribe/demo",
            json={"email": "ann@example.com", "consent": True},
            headers={"Origin": base},
            timeout=10,
        )
        assert signup.status_code == 202

        web = requests.Session()
        page = web.get(f"{base}/login", timeout=10).text
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        web.post(
            f"{base}/login",
            data={"csrf_token": csrf, "email": login[0], "password": login[1].strip()},
            timeout=10,
        )
        deadline = time.monotonic() + 30
        while "Please confirm your subscription" not in (
            outbox := web.get(f"{base}/admin/outbox/", timeout=10).text
        ):
            assert time.monotonic() < deadline, "the worker never delivered to the catcher"
            time.sleep(0.3)
        key = re.search(r'href="/admin/outbox/([^"/]+)"', outbox).group(1)
        assert f"{base}/confirm/" in web.get(f"{base}/admin/outbox/{key}", timeout=10).text
        html = web.get(f"{base}/admin/outbox/{key}/html", timeout=10)
        assert (
            "Confirm my subscription" in html.text
            and "sandbox" in html.headers["Content-Security-Policy"]
        )
        assert (
            b"List-Unsubscribe-Post"
            in web.get(f"{base}/admin/outbox/{key}/raw", timeout=10).content
        )
        assert (
            requests.get(f"{base}/admin/outbox/", timeout=10, allow_redirects=False).status_code
            == 302
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    output = (tmp_path / "run.log").read_text()
    assert "mailer is running" in output and "/subscribe/demo" in output
    assert not Path(tmp_path / "instance" / "redis.sock").exists() or _socket_dead(
        tmp_path / "instance" / "redis.sock"
    )


def _socket_dead(path: Path) -> bool:
    import redis

    try:
        redis.Redis(unix_socket_path=str(path)).ping()
    except redis.exceptions.ConnectionError:
        return True
    return False


def _wait_for(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mailer run exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError("mailer run did not answer within 60 s")


def test_consent_verify_and_anchor(cli_env, session, db_kind):
    from sqlalchemy import text

    from mailer.consent import ledger
    from mailer.consent.models import ConsentEventType, ConsentSource
    from mailer.subscribers.models import Subscriber

    ann = Subscriber(email="ann@example.com", locale="en", attributes={})
    session.add(ann)
    session.flush()
    for _ in range(3):
        ledger.record(session, ConsentEventType.REQUESTED, ann, ["news"], ConsentSource.FORM)
    session.commit()

    anchor = _mailer(cli_env, "consent", "anchor")
    assert anchor.returncode == 0 and " seq 3 " in anchor.stdout
    ok = _mailer(cli_env, "consent", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "ledger OK: 3 events, 1 anchors checked" in ok.stdout

    if db_kind == "postgresql":
        session.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        session.execute(text("DROP TRIGGER consent_events_no_update"))
    session.execute(text("UPDATE consent_events SET topics = '[\"offers\"]' WHERE seq = 2"))
    session.commit()
    broken = _mailer(cli_env, "consent", "verify")
    assert broken.returncode == 1
    assert "altered at seq 2" in broken.stderr and "after 1 good events" in broken.stderr


def test_subjects_erase(cli_env, session):
    from mailer.consent import ledger
    from mailer.consent.models import ConsentEventType, ConsentSource
    from mailer.subscribers.models import Subscriber

    ann = Subscriber(email="ann@example.com", locale="en", attributes={})
    session.add(ann)
    session.flush()
    ledger.record(session, ConsentEventType.REQUESTED, ann, ["news"], ConsentSource.FORM)
    session.commit()
    result = _mailer(cli_env, "subjects", "erase", "ann@example.com", "--actor", "dpo")
    assert result.returncode == 0, result.stderr
    assert "1 consent events pseudonymised" in result.stdout
    again = _mailer(cli_env, "subjects", "erase", "ann@example.com", "--actor", "dpo")
    assert again.returncode == 1 and "nothing is held" in again.stderr
    bad = _mailer(cli_env, "subjects", "erase", "not an address", "--actor", "dpo")
    assert bad.returncode == 2 and "not a valid email address" in bad.stderr


def test_subjects_export_and_receipt(cli_env, client, session, work, inbox):
    import json

    from tests.compliance.subjects import EMAIL, subscribed

    subscribed(client, session, work, inbox)
    export = _mailer(cli_env, "subjects", "export", EMAIL)
    assert export.returncode == 0, export.stderr
    assert json.loads(export.stdout)["subscriptions"][0]["status"] == "active"
    receipt = _mailer(cli_env, "subjects", "receipt", EMAIL)
    assert receipt.returncode == 0 and json.loads(receipt.stdout)["piiPrincipalId"] == EMAIL
    missing = _mailer(cli_env, "subjects", "export", "nobody@example.com")
    assert missing.returncode == 1 and "nothing is held" in missing.stderr


def test_consent_export(cli_env, client, session, work, inbox, tmp_path):
    import csv
    import json

    from tests.compliance.subjects import subscribed

    subscribed(client, session, work, inbox)
    jsonl = _mailer(cli_env, "consent", "export", "--format", "jsonl", "--type", "confirmed")
    assert jsonl.returncode == 0, jsonl.stderr
    assert [json.loads(line)["type"] for line in jsonl.stdout.splitlines()] == ["confirmed"]
    assert "1 events exported" in jsonl.stderr
    target = tmp_path / "audit.csv"
    to_file = _mailer(cli_env, "consent", "export", "-o", str(target), "--since", "2020-01-01")
    assert to_file.returncode == 0
    assert len(list(csv.DictReader(target.open()))) == 2
    bad = _mailer(cli_env, "consent", "export", "--type", "bogus")
    assert bad.returncode == 2 and "--type" in bad.stderr
