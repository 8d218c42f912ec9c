"""Front-end libraries vendored through package.json, served from node_modules.

An allow-list, not a directory: nothing else under node_modules is reachable. Served from our
own origin so the Content-Security-Policy can stay `script-src 'self'`.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, send_file

from mailer.config import ROOT

bp = Blueprint("assets", __name__, url_prefix="/assets")

VENDORED = {
    "htmx.min.js": ROOT / "node_modules" / "htmx.org" / "dist" / "htmx.min.js",
}


@bp.get("/<name>")
def vendored(name: str) -> Response:
    path = VENDORED.get(name)
    if path is None or not path.is_file():
        abort(404)
    response = send_file(path, mimetype="text/javascript", max_age=3600)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
