"""Settings (admins only): sender identities, SMTP, sending rate, tracking defaults,
retention, and DKIM keys, over the environment's values, with the history of changes.

Values live in `mailer.settings.store` (validation in `mailer.settings.schema`); every view
here parses a form, calls the store, and renders. Each process (web or worker) sees a change
within `store.CACHE_SECONDS`, workers at their next job; the page says so.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from mailer.admin.access import ADMIN, roles_required
from mailer.admin.pagination import page_arg
from mailer.api.errors import flatten
from mailer.api.fields import MAX_ID
from mailer.config import Settings
from mailer.extensions import db
from mailer.settings import dkim_keys, store
from mailer.settings.schema import KEYS, MASK, mask_smtp_url

bp = Blueprint("admin_settings", __name__, url_prefix="/admin/settings")

ID = f"int(max={MAX_ID})"
HISTORY_PER_PAGE = 25
_ROW = re.compile(r"^identities-([A-Za-z0-9]{1,16})-(name|email|reply_to|remove)$")


def _base() -> Settings:
    return current_app.config["MAILER"]


def _who() -> dict[str, Any]:
    return {"user_id": current_user.id, "user_email": current_user.email}


def _identity_rows(form: Any) -> tuple[list[dict[str, str]], list[str]]:
    """The identity rows of the form in their order, the removed and blank ones left out,
    and each kept row's token (its inputs' names), to put errors back beside it."""
    rows: dict[str, dict[str, str]] = {}
    for name, value in form.items(multi=True):
        match = _ROW.match(name)
        if match:
            rows.setdefault(match.group(1), {})[match.group(2)] = value
    kept, tokens = [], []
    for token, row in rows.items():
        if row.get("remove") or not any((row.get(k) or "").strip() for k in ("name", "email")):
            continue
        kept.append({k: row.get(k, "") for k in ("name", "email", "reply_to")})
        tokens.append(token)
    return kept, tokens


def _form_data(name: str) -> tuple[dict[str, Any], list[str]]:
    """What a section's form submitted, in the key's input shape."""
    form = request.form
    if name == "identities":
        rows, tokens = _identity_rows(form)
        return {"identities": rows}, tokens
    fields = {
        "smtp": ("url",),
        "rates": ("per_second", "per_hour"),
        "tracking": ("opens", "clicks"),
        "retention": ("pending_days", "tracking_days"),
    }[name]
    return {f: form[f].strip() for f in fields if f in form}, []


def _shown_identities(value: dict[str, Any]) -> list[dict[str, str]]:
    """Rows for the form: each with a token (kept if it came back from a failed submit)."""
    rows = [{"token": secrets.token_hex(4), **row} for row in value.get("identities", [])]
    return rows or [{"name": "", "email": "", "reply_to": "", "token": secrets.token_hex(4)}]


def _row_errors(errors: dict[str, list[str]], rows: list[dict[str, str]]) -> dict[str, list]:
    """`identities.<n>.<field>` errors keyed `<token>.<field>`, to show beside their row."""
    out = {}
    for name, messages in errors.items():
        match = re.match(r"^identities\.(\d+)\.(\w+)$", name)
        if match and int(match.group(1)) < len(rows):
            out[f"{rows[int(match.group(1))]['token']}.{match.group(2)}"] = messages
    return out


def _page(
    status: int = 200,
    *,
    section: str | None = None,
    submitted: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    dkim_form: dict[str, str] | None = None,
) -> Response:
    """The settings page; a section that failed keeps what was submitted, with its errors."""
    base = _base()
    session = db.session
    effective = store.compute(session, base)  # what every process uses within seconds
    saved = store.stored(session, base.secret_key)
    values = {}
    for name, spec in KEYS.items():
        if name == section and submitted is not None:
            values[name] = submitted
        else:
            values[name] = spec.shown(saved.get(name, spec.read(base)))
    keys, key_count = dkim_keys.listing(session)
    current_key = keys[0] if keys else None
    env_dkim = bool(base.dkim_domain and base.dkim_selector and base.dkim_key_path)
    identities = [i.email for i in effective.sender_identities]
    suggested_domain = identities[0].rpartition("@")[2] if identities else ""
    changes, _total = store.history(session, 1, 10)
    identity_rows = _shown_identities(values["identities"])
    return Response(
        render_template(
            "web/admin/settings/index.html",
            values=values,
            identity_rows=identity_rows,
            row_errors=_row_errors(errors or {}, identity_rows) if section == "identities" else {},
            env={name: KEYS[name].shown(store.environment(base, name)) for name in KEYS},
            saved=saved,
            effective=effective,
            section=section,
            errors=errors or {},
            unusable=store.unusable(session, base.secret_key),
            cache_seconds=int(store.CACHE_SECONDS),
            env_dkim=env_dkim,
            dkim_current=current_key,
            dkim_keys=keys,
            dkim_count=key_count,
            dns=dkim_keys.dns_record,
            misaligned=(
                dkim_keys.misaligned(current_key.domain, identities) if current_key else []
            ),
            dkim_form=dkim_form
            or {
                "domain": current_key.domain if current_key else suggested_domain,
                "selector": f"mailer{datetime.now(UTC):%Y%m}",
            },
            changes=changes,
            describe=describe,
            labels={name: spec.label for name, spec in KEYS.items()} | {"dkim": "DKIM key"},
            mask=MASK,
            smtp_in_use=mask_smtp_url(effective.smtp_url),
        ),
        status=status,
    )


def describe(name: str, value: Any) -> str:
    """A value as one line of text for the history ("environment default" for None)."""
    if value is None:
        return "environment default"
    if not isinstance(value, dict):
        return str(value)
    if name == "identities":
        return "; ".join(
            f"{i.get('name')} <{i.get('email')}>"
            + (f" (reply to {i['reply_to']})" if i.get("reply_to") else "")
            for i in value.get("identities", [])
        )
    return ", ".join(f"{k.replace('_', ' ')}: {_word(v)}" for k, v in value.items())


def _word(value: Any) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    return str(value)


@bp.get("/")
@roles_required(*ADMIN)
def index() -> Response:
    return _page()


@bp.get("/identities/row")
@roles_required(*ADMIN)
def _identity_row() -> str:
    """One more empty identity row (htmx appends it to the list)."""
    row = {"name": "", "email": "", "reply_to": "", "token": secrets.token_hex(4)}
    return render_template("web/admin/settings/_identity_row.html", row=row, row_errors={})


def _save(name: str) -> Response:
    data, tokens = _form_data(name)
    try:
        store.save(db.session, name, data, _base(), **_who())
    except store.SettingsError as exc:
        errors = flatten(exc.messages)
        submitted: dict[str, Any] = data
        if name == "identities":
            rows = [{**r, "token": t} for r, t in zip(data["identities"], tokens, strict=True)]
            submitted = {"identities": rows}
        return _page(422, section=name, submitted=submitted, errors=errors)
    flash(
        f"{KEYS[name].label} saved. It applies within {int(store.CACHE_SECONDS)} seconds: "
        "to the web app, and to workers at their next job.",
        "ok",
    )
    return redirect(url_for(".index") + f"#{name}")


@bp.post("/identities")
@roles_required(*ADMIN)
def identities() -> Response:
    return _save("identities")


@bp.post("/smtp")
@roles_required(*ADMIN)
def smtp() -> Response:
    return _save("smtp")


@bp.post("/rates")
@roles_required(*ADMIN)
def rates() -> Response:
    return _save("rates")


@bp.post("/tracking")
@roles_required(*ADMIN)
def tracking() -> Response:
    return _save("tracking")


@bp.post("/retention")
@roles_required(*ADMIN)
def retention() -> Response:
    return _save("retention")


@bp.post("/<name>/reset")
@roles_required(*ADMIN)
def reset(name: str) -> Response:
    if name not in KEYS:
        abort(404)
    if store.reset(db.session, name, _base(), **_who()):
        flash(f"{KEYS[name].label}: back to the environment's value.", "ok")
    else:
        flash(f"{KEYS[name].label} already uses the environment's value.", "warning")
    return redirect(url_for(".index") + f"#{name}")


@bp.post("/dkim")
@roles_required(*ADMIN)
def dkim_generate() -> Response:
    domain = request.form.get("domain", "")
    selector = request.form.get("selector", "")
    try:
        row = dkim_keys.generate(db.session, _base().secret_key, domain, selector, **_who())
    except store.SettingsError as exc:
        return _page(
            422,
            section="dkim",
            errors=flatten(exc.messages),
            dkim_form={"domain": domain, "selector": selector},
        )
    flash(
        f"DKIM key generated for {row.domain} (selector {row.selector}). Publish its DNS record "
        "now: mail is signed with it from the next job on.",
        "ok",
    )
    return redirect(url_for(".index") + "#dkim")


@bp.post(f"/dkim/<{ID}:key_id>/delete")
@roles_required(*ADMIN)
def dkim_delete(key_id: int) -> Response:
    try:
        row = dkim_keys.delete(db.session, key_id, **_who())
    except LookupError:
        abort(404)
    except store.SettingsError as exc:
        for messages in exc.messages.values():
            for message in messages:
                flash(message, "error")
        return redirect(url_for(".index") + "#dkim")
    flash(f"DKIM key {row.selector}._domainkey.{row.domain} deleted.", "ok")
    return redirect(url_for(".index") + "#dkim")


@bp.get("/history")
@roles_required(*ADMIN)
def history() -> str:
    number = page_arg()
    name = request.args.get("key") or None
    if name is not None and name not in KEYS and name != dkim_keys.HISTORY_KEY:
        name = None
    rows, total = store.history(db.session, number, HISTORY_PER_PAGE, name)
    return render_template(
        "web/admin/settings/history.html",
        rows=rows,
        total=total,
        page=number,
        per_page=HISTORY_PER_PAGE,
        describe=describe,
        key=name,
        labels={n: spec.label for n, spec in KEYS.items()} | {"dkim": "DKIM key"},
    )
