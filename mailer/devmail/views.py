"""The Outbox: every message the local catcher received, readable like Mailpit."""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, current_app, render_template

from mailer.admin.access import STAFF, roles_required
from mailer.devmail.outbox import Outbox

bp = Blueprint("outbox", __name__, url_prefix="/admin/outbox")

KEY = re.compile(r"^[A-Za-z0-9._:,=-]{1,200}$")
# The message's own HTML runs nothing and reaches nothing: a sandboxed, script-free document.
MESSAGE_CSP = (
    "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "
    "img-src data: http: https:; style-src 'unsafe-inline'; font-src data: http: https:; "
    "frame-ancestors 'self'"
)


def _outbox() -> Outbox:
    return Outbox(current_app.config["MAILER"].instance_path / "outbox")


def _message(key: str):
    if not KEY.match(key):
        abort(404)
    msg = _outbox().message(key)
    if msg is None:
        abort(404)
    return msg


@bp.get("/")
@roles_required(*STAFF)
def index() -> str:
    return render_template("web/outbox/index.html", messages=_outbox().list())


@bp.get("/<key>")
@roles_required(*STAFF)
def show(key: str) -> str:
    msg = _message(key)
    return render_template(
        "web/outbox/show.html",
        key=key,
        msg=msg,
        text=Outbox.part(msg, "plain"),
        has_html=Outbox.part(msg, "html") is not None,
        raw=_outbox().raw(key).decode("utf-8", "replace"),
        headers=list(msg.items()),
    )


@bp.get("/<key>/html")
@roles_required(*STAFF)
def html(key: str) -> Response:
    body = Outbox.part(_message(key), "html")
    if body is None:
        abort(404)
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = MESSAGE_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.get("/<key>/raw")
@roles_required(*STAFF)
def raw(key: str) -> Response:
    _message(key)
    return Response(_outbox().raw(key), mimetype="text/plain")
