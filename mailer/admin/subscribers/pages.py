"""The subscriber list (search and filters) and one subscriber's profile, with attributes
that marketing staff may set and delete. Every view of personal data is on the staff log."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from mailer.admin.access import MARKETING, STAFF, can, roles_required
from mailer.admin.access_log import log_access
from mailer.admin.pagination import page_arg
from mailer.admin.subscribers import bp
from mailer.api.fields import ID
from mailer.compliance.staff_log import mask
from mailer.extensions import db
from mailer.subscribers import attribute_values, profiles, search, timeline
from mailer.subscribers.models import Form, Subscriber, SubscriberStatus, Topic
from mailer.web import htmx_fragment

PER_PAGE = 50
MAX_TOPICS = 500  # in the filter's drop-down


def _topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(Topic.name).limit(MAX_TOPICS)))


@bp.get("/")
@roles_required(*STAFF)
def index() -> Response | str:
    text = request.args.get("q", "").strip()[: search.MAX_TEXT]
    status_arg = request.args.get("status", "")
    topic_arg = request.args.get("topic", "")
    errors: dict[str, list[str]] = {}
    status = None
    if status_arg:
        try:
            status = SubscriberStatus(status_arg)
        except ValueError:
            errors["status"] = ["unknown status"]
    topic_id = None
    if topic_arg:
        topic_id = search.topic_id(db.session, topic_arg)
        if topic_id is None:
            errors["topic"] = ["unknown topic"]
    page = page_arg()
    rows, total = [], 0
    if not errors:
        query = search.Query(text=text, status=status, topic_id=topic_id)
        rows, total = search.search(db.session, query, page, PER_PAGE)
        details = {"q": mask(text) if "@" in text else text, "status": status_arg}
        details.update(topic=topic_arg, page=page if page > 1 else 0)
        log_access("subscribers.list", details={k: v for k, v in details.items() if v})
    context = {
        "rows": rows,
        "total": total,
        "page": page,
        "per_page": PER_PAGE,
        "errors": errors,
        "filters": {"q": text, "status": status_arg, "topic": topic_arg},
    }
    if htmx_fragment():
        return render_template("web/admin/subscribers/_results.html", **context)
    html = render_template(
        "web/admin/subscribers/index.html",
        topics=_topics(),
        statuses=[s.value for s in SubscriberStatus],
        **context,
    )
    return Response(html, status=422 if errors else 200)


def _subscriber_or_404(subscriber_id: int) -> Subscriber:
    subscriber = profiles.find(db.session, subscriber_id)
    if subscriber is None:
        abort(404)
    return subscriber


def _render_profile(
    subscriber: Subscriber,
    status: int = 200,
    errors: dict[str, list[str]] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    log_access("subscriber.view", subscriber.email, subscriber.id)
    engagement, engagement_total = timeline.engagement(db.session, subscriber.id)
    deliveries, deliveries_total = timeline.deliveries(db.session, subscriber.id)
    attributes = [
        (key, attribute_values.kind_of(value), attribute_values.as_text(value))
        for key, value in sorted((subscriber.attributes or {}).items())
    ]
    source_form = (
        db.session.get(Form, subscriber.source_form_id) if subscriber.source_form_id else None
    )
    html = render_template(
        "web/admin/subscribers/profile.html",
        s=subscriber,
        source_form=source_form,
        topics=profiles.topics_of(subscriber),
        attributes=attributes,
        kinds=attribute_values.KINDS,
        consent=timeline.consent(db.session, subscriber.id),
        engagement=engagement,
        engagement_total=engagement_total,
        deliveries=deliveries,
        deliveries_total=deliveries_total,
        errors=errors or {},
        values=values or {},
        can_edit=can(*MARKETING),
    )
    return Response(html, status=status)


@bp.get(f"/<{ID}:subscriber_id>")
@roles_required(*STAFF)
def profile(subscriber_id: int) -> Response:
    return _render_profile(_subscriber_or_404(subscriber_id))


def _saved(subscriber: Subscriber, message: str) -> Response:
    log_access("subscriber.update", subscriber.email, subscriber.id, {"fields": ["attributes"]})
    flash(message, "ok")
    return redirect(url_for(".profile", subscriber_id=subscriber.id) + "#attributes")


@bp.post(f"/<{ID}:subscriber_id>/attributes")
@roles_required(*MARKETING)
def set_attribute(subscriber_id: int) -> Response:
    """Set one attribute to a typed value (as the API's PATCH would)."""
    subscriber = _subscriber_or_404(subscriber_id)
    key = request.form.get("key", "").strip()
    kind = request.form.get("kind", "text")
    text = request.form.get("value", "")
    values = {"key": key, "kind": kind, "value": text}
    errors: dict[str, list[str]] = {}
    if not key:
        errors["key"] = ["give the attribute a name"]
    else:
        problem = profiles.check_attribute(key, None)
        if problem:
            errors["key"] = next(iter(problem.values()))
    value: Any = None
    try:
        value = attribute_values.parse(kind, text)
    except ValueError as exc:
        errors["value"] = [str(exc)]
    if not errors:
        change = profiles.ProfileChange(attributes={key: value})
        try:
            profiles.update_profile(db.session, subscriber, change)
        except profiles.InvalidAttributes as exc:
            db.session.rollback()
            errors["value"] = [m for messages in exc.errors.values() for m in messages]
    if errors:
        return _render_profile(subscriber, 422, errors, values)
    return _saved(subscriber, f"Attribute {key} saved.")


@bp.post(f"/<{ID}:subscriber_id>/attributes/delete")
@roles_required(*MARKETING)
def delete_attribute(subscriber_id: int) -> Response:
    subscriber = _subscriber_or_404(subscriber_id)
    key = request.form.get("key", "")
    if key not in (subscriber.attributes or {}):
        flash("There is no attribute by that name.", "error")
        return redirect(url_for(".profile", subscriber_id=subscriber.id) + "#attributes")
    profiles.update_profile(db.session, subscriber, profiles.ProfileChange(attributes={key: None}))
    return _saved(subscriber, f"Attribute {key} deleted.")
