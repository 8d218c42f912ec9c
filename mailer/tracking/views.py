"""Tracking and bounce endpoints. Thin: parse, call, answer.

- `GET /t/o/<token>`: the open pixel. Always the same 43-byte GIF, whatever the token:
  a forged or expired token is simply not recorded, and nothing is revealed.
- `GET /t/c/<token>`: the click redirect, 302 to the URL signed into the token and nowhere
  else; a token that is not ours is a 404. An expired token still redirects (we signed that
  URL), without recording.
Both are hot paths: one Redis write, no database, no rate limit. HEAD records nothing.

- `POST /webhooks/bounces` (JSON, see `mailer.tracking.webhook`) and
  `POST /webhooks/bounces/raw` (one bounce or complaint message, `message/rfc822`), for a
  shared secret in `Authorization: Bearer <secret>` or `X-Webhook-Secret`; 404 while
  `MAILER_BOUNCE_WEBHOOK_SECRET` is unset.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, request
from marshmallow import ValidationError

from mailer.api.errors import flatten
from mailer.extensions import csrf, db, jobs, limiter
from mailer.tracking import hits, ingest, pixel, webhook

bp = Blueprint("tracking", __name__)

# The smallest transparent GIF: 1x1, one transparent colour.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "Thu, 01 Jan 1970 00:00:00 GMT",
}
WEBHOOK_RATE_LIMIT = "600/minute"
# More than the app's default body limit: a batch of `webhook.MAX_EVENTS` events, and
# bounces come back with the original message attached.
BODY_MAX_BYTES = 2 * 1024 * 1024


def _settings():
    return current_app.config["MAILER"]


def _tokens():
    return current_app.extensions["mailer.tokens"]


@bp.record_once
def _fast_pixel(state) -> None:
    """GET and HEAD of /t/o/<token> are answered in front of Flask (`tracking.pixel`), with
    exactly what `open_pixel` answers; the view below still serves anything else."""
    pixel.install(state.app, PIXEL)


@bp.get("/t/o/<token>")
@limiter.exempt
def open_pixel(token: str) -> Response:
    if request.method == "GET":
        hits.record_open(
            jobs.redis, _tokens(), token, request.remote_addr, request.user_agent.string
        )
    return Response(PIXEL, mimetype="image/gif", headers=NO_CACHE)


@bp.get("/t/c/<token>")
@limiter.exempt
def click(token: str) -> Response:
    target = hits.click_target(_tokens(), token)
    if target is None:
        abort(404)
    if request.method == "GET":
        hits.record_click(jobs.redis, target, request.remote_addr, request.user_agent.string)
    return redirect(target.url, code=302)


def _refused(status: int, errors: dict[str, list[str]], **headers: str) -> Response:
    """Errors in the one shape, always as JSON: the callers are servers, whatever they accept."""
    response = jsonify(errors=errors)
    response.status_code = status
    response.headers.update(headers)
    return response


def _unauthorised() -> Response | None:
    """404 while no secret is configured (the endpoint does not exist), 401 without it."""
    secret = _settings().bounce_webhook_secret
    if not secret:
        abort(404)
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    given = request.headers.get("X-Webhook-Secret") or (
        bearer.strip() if scheme.lower() == "bearer" else ""
    )
    # Equal-length digests compared in constant time: neither the secret nor its length leaks.
    if given and hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(secret.encode()).digest()
    ):
        return None
    return _refused(
        401,
        {"authorization": ["a valid webhook secret is required"]},
        **{"WWW-Authenticate": 'Bearer realm="webhooks"'},
    )


@bp.post("/webhooks/bounces")
@csrf.exempt  # a server-to-server call; the shared secret is the proof
@limiter.limit(WEBHOOK_RATE_LIMIT, scope="bounce-webhook")
def bounce_webhook() -> Response:
    refusal = _unauthorised()
    if refusal is not None:
        return refusal
    request.max_content_length = BODY_MAX_BYTES
    body = request.get_json(silent=True)
    if not isinstance(body, dict | list):
        return _refused(400, {"body": ["Send one JSON event object or a list of them."]})
    many = isinstance(body, list)
    if many and len(body) > webhook.MAX_EVENTS:
        return _refused(400, {"body": [f"At most {webhook.MAX_EVENTS} events per request."]})
    try:
        loaded = webhook.BounceEventArgs().load(body, many=many)
    except ValidationError as exc:
        return _refused(400, flatten(exc.messages))
    events = loaded if many else [loaded]
    results = webhook.record_events(db.session, events, _settings().secret_key)
    return jsonify(results=results, recorded=sum(1 for r in results if r["recorded"]))


@bp.post("/webhooks/bounces/raw")
@csrf.exempt
@limiter.limit(WEBHOOK_RATE_LIMIT, scope="bounce-webhook")
def bounce_webhook_raw() -> Response:
    refusal = _unauthorised()
    if refusal is not None:
        return refusal
    if request.mimetype != "message/rfc822":
        return _refused(415, {"content_type": ["Send the message as message/rfc822."]})
    request.max_content_length = BODY_MAX_BYTES
    raw = request.get_data(cache=False)
    if not raw.strip():
        return _refused(400, {"body": ["The message is empty."]})
    results = ingest.ingest_message(db.session, raw, _settings().secret_key)
    return jsonify(
        results=[
            {
                "recorded": new,
                "kind": bounce.kind.value,
                "delivery_id": bounce.delivery_id,
                "suppressed": bounce.suppressed,
            }
            for bounce, new in results
        ],
        recorded=sum(1 for _bounce, new in results if new),
    )
