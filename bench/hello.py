"""The web cases' yardstick: the product's own `wsgi:app` with one hello-world route added.

`gunicorn bench.hello:app` serves the very app `gunicorn wsgi:app` serves (same settings, same
before/after-request hooks, limiter, CSRF, Babel, security headers, error handlers) plus
`GET /bench/hello`, so "signup at 50% of hello-world" compares the sign-up's own work with
the cheapest answer this app and server can give. The route lives here and not behind a
setting in the product: production code never carries a benchmark route, not even switched
off. `flask_view` is the same app with the open pixel's fast path taken off (see the pixel
case).
"""

from __future__ import annotations

from flask import Response

from bench.http_load import HELLO_PATH
from mailer.tracking.pixel import PixelFastPath
from wsgi import app


@app.get(HELLO_PATH)
def hello() -> Response:
    return Response("Hello, World!", mimetype="text/plain")


def _behind_fast_path() -> object:
    wsgi = app.wsgi_app
    return wsgi.inner if isinstance(wsgi, PixelFastPath) else wsgi


# The same app without the pixel's fast path (`mailer.tracking.pixel`): every request,
# pixels included, goes through Flask. Only to show in RESULTS.md what the fast path buys.
flask_view = _behind_fast_path()
