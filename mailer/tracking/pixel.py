"""The open pixel, answered in front of Flask: the product's hottest path.

After a campaign goes out, every open is one `GET /t/o/<token>`, in bursts. Flask's request
machinery (request context, session, limiter, URL map, after-request hooks) costs more than
the hit's own work (check the token's signature, one Redis `XADD`), so `PixelFastPath`, a
plain WSGI layer around the app, answers GET and HEAD of exactly `/t/o/<token>` itself and
hands every other request to the app untouched.

It answers what the Flask view (`views.open_pixel`, still routed, and still what an odd
request such as `POST /t/o/x` or `/t//o/x` reaches) answers: the status and headers are
taken once from the app itself (a HEAD through the full WSGI stack: after-request hooks and
security headers included), the body is the same 43-byte GIF, and the hit is recorded by the
same `hits.record_open` on the app's Redis connection before the answer is handed to the
server, so a hit whose pixel was sent is in Redis whatever happens to this process next.
Installed by the tracking blueprint when an app registers it (`views.bp`), inside ProxyFix
when `MAILER_PROXY_COUNT` is set, so the client address it classifies is the same one.

The learnt headers are replayed as they are: an after-request hook that varied its headers
per request would need teaching here (tests/tracking/test_pixel_fast_path.py compares the
two answers header by header).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client

from mailer.tracking import hits

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# What the Flask rule "/t/o/<token>" matches (the default converter: no slash, not empty).
PATH = re.compile(r"/t/o/([^/]+)")
# Any token will do to learn the answer's headers: HEAD records nothing.
PROBE_PATH = "/t/o/-"


class PixelFastPath:
    """WSGI middleware: GET and HEAD of /t/o/<token> answered here, the rest by `inner`."""

    def __init__(self, app: Flask, inner: WSGIApp, body: bytes) -> None:
        self.app = app
        self.inner = inner
        self.body = body
        self._answer: tuple[str, list[tuple[str, str]]] | None = None

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method == "GET" or method == "HEAD":
            match = PATH.fullmatch(environ.get("PATH_INFO", ""))
            if match is not None:
                answer = self._answer or self._learn()
                if answer is not None:
                    return self._pixel(environ, start_response, match.group(1), answer)
        return self.inner(environ, start_response)

    def _pixel(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        raw_token: str,
        answer: tuple[str, list[tuple[str, str]]],
    ) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "GET":
            # As Werkzeug decodes the path for the Flask route (WSGI strings are latin-1).
            token = raw_token.encode("latin-1").decode("utf-8", "replace")
            extensions = self.app.extensions
            hits.record_open(
                extensions["mailer.redis"],
                extensions["mailer.tokens"],
                token,
                environ.get("REMOTE_ADDR"),
                environ.get("HTTP_USER_AGENT", ""),
            )
            start_response(answer[0], list(answer[1]))
            return [self.body]
        start_response(answer[0], list(answer[1]))
        return []

    def _learn(self) -> tuple[str, list[tuple[str, str]]] | None:
        """The Flask view's status and headers, from a HEAD through the whole app behind us.
        None (and the request goes to Flask) if that answer is not the pixel."""
        response = Client(self.inner).head(PROBE_PATH)
        headers = response.headers
        if (
            response.status_code != 200
            or headers.get("Content-Type") != "image/gif"
            or headers.get("Content-Length") != str(len(self.body))
            or "Set-Cookie" in headers
        ):
            return None
        self._answer = (response.status, headers.to_wsgi_list())
        return self._answer


def install(app: Flask, body: bytes) -> None:
    """Put the fast path in front of the app, inside ProxyFix if there is one (it must see
    the client address ProxyFix works out from X-Forwarded-For)."""
    wsgi = app.wsgi_app
    if isinstance(wsgi, ProxyFix):
        wsgi.app = PixelFastPath(app, wsgi.app, body)
    else:
        app.wsgi_app = PixelFastPath(app, wsgi, body)  # type: ignore[method-assign]
