"""Self-service data rights from the preference page: download my data (GDPR Art. 15, 20) and
erase my data (Art. 17). Thin: the signed preference link is the proof of who is asking.

Only a preference-page token opens these (its own salt: a confirmation or unsubscribe token
does not), every change is a POST with our CSRF token, and the download is rate limited. The
data goes only to whoever holds the link sent to the verified address, as a download; it is
never shown on a page. Erasure goes through the one audited path
(`mailer.compliance.erasure.erase`), like staff, API and command-line erasures.
"""

from __future__ import annotations

import contextlib
import json

from flask import Response, render_template, request
from flask_babel import gettext as _

from mailer.compliance import access, access_zip, erasure, staff_log
from mailer.consent.models import ConsentSource
from mailer.extensions import db, limiter
from mailer.public.signed_links import failed, subscriber_from
from mailer.public.views import bp, signup_limit
from mailer.tokens import Purpose

# Downloads per IP: each builds the whole access document.
EXPORT_LIMIT = "5/hour"
ACTOR = "self-service"  # the person, through their preference link
# No IP: the log is append-only, and the visitor's address must not outlive an erasure there.
SELF = staff_log.Staff(api_key_name=ACTOR)


def _log(action: str, email: str, subscriber_id: int, **details: str) -> None:
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    staff_log.record(
        db.session, SELF, action, f"POST {rule}", email, subscriber_id, details or None
    )


@bp.post("/preferences/<token>/data")
@limiter.limit(EXPORT_LIMIT, scope="self-export-ip")
def self_export(token: str) -> Response:
    """Everything we hold about the person, as one JSON document or a ZIP of CSV files."""
    subscriber, _payload, problem = subscriber_from(Purpose.PREFERENCES, token)
    if problem:
        return problem
    fmt = "zip" if request.form.get("format") == "zip" else "json"
    _log("subject.self_export", subscriber.email, subscriber.id, format=fmt)
    try:
        document = access.export(db.session, subscriber.email)
    except access.NothingHeld:  # erased between loading the profile and now
        return Response(status=404)
    if fmt == "zip":
        body, mimetype = access_zip.archive(document), "application/zip"
    else:
        body, mimetype = json.dumps(document, indent=2, ensure_ascii=False), "application/json"
    return Response(
        body,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="my-data.{fmt}"'},
    )


@bp.get("/preferences/<token>/erase")
def self_erase_page(token: str) -> Response:
    """What erasure removes and what it keeps, and the button that does it."""
    _subscriber, _payload, problem = subscriber_from(Purpose.PREFERENCES, token)
    if problem:
        return problem
    return Response(render_template("web/public/erase.html", token=token, error=None))


@bp.post("/preferences/<token>/erase")
@limiter.limit(signup_limit, scope="self-erase-ip", deduct_when=failed)
def self_erase(token: str) -> Response:
    subscriber, _payload, problem = subscriber_from(Purpose.PREFERENCES, token)
    if problem:
        return problem
    if request.form.get("confirm") != "yes":
        html = render_template(
            "web/public/erase.html",
            token=token,
            error=_("Confirm that you want your data erased."),
        )
        return Response(html, status=400)
    email, subscriber_id = subscriber.email, subscriber.id
    _log("subject.self_erase", email, subscriber_id)
    # Erased a moment ago (a double click): the outcome is the same.
    with contextlib.suppress(erasure.NothingToErase):
        erasure.erase(db.session, email, ACTOR, ConsentSource.PREFERENCES)
    return Response(render_template("web/public/erased.html"))
