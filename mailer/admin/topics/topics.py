"""Topics: the list (with subscriptions per status), create, and edit name and description.
Values are checked with the API's own schema, so both doors accept the same things."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import func, select

from mailer.admin.access import MARKETING, roles_required
from mailer.admin.pagination import page_arg
from mailer.admin.topics import bp
from mailer.api.errors import flatten
from mailer.api.fields import ID
from mailer.api.topics import TopicArgs
from mailer.extensions import db
from mailer.subscribers import form_editing
from mailer.subscribers.models import Topic

PER_PAGE = 50
NEW_TOPIC = TopicArgs()
TOPIC_EDIT = TopicArgs(only=("name", "description"))


@bp.get("/")
@roles_required(*MARKETING)
def index() -> str:
    page = page_arg()
    total = db.session.scalar(select(func.count()).select_from(Topic)) or 0
    topics = list(
        db.session.scalars(
            select(Topic).order_by(Topic.id).offset((page - 1) * PER_PAGE).limit(PER_PAGE)
        )
    )
    counts = form_editing.subscription_counts(db.session, [t.id for t in topics])
    return render_template(
        "web/admin/topics/index.html",
        topics=topics,
        counts=counts,
        page=page,
        per_page=PER_PAGE,
        total=total,
    )


def _values(fields: tuple[str, ...]) -> dict[str, str]:
    return {name: request.form.get(name, "") for name in fields}


def _render(template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("errors", {})
    return Response(render_template(template, **context), status=status)


@bp.get("/new")
@roles_required(*MARKETING)
def new() -> Response:
    return _render("web/admin/topics/topic.html", topic=None, values={})


@bp.post("/new")
@roles_required(*MARKETING)
def create() -> Response:
    values = _values(("slug", "name", "description"))
    try:
        args = NEW_TOPIC.load(values)
        topic = form_editing.create_topic(
            db.session, args["slug"], args["name"], args["description"]
        )
    except ValidationError as exc:
        errors = flatten(exc.messages)
        return _render("web/admin/topics/topic.html", 422, topic=None, values=values, errors=errors)
    except form_editing.Problems as exc:
        db.session.rollback()
        return _render(
            "web/admin/topics/topic.html", 409, topic=None, values=values, errors=exc.errors
        )
    flash(f"Topic {topic.slug} created.", "ok")
    return redirect(url_for(".index"))


def _topic_or_404(topic_id: int) -> Topic:
    topic = db.session.get(Topic, topic_id)
    if topic is None:
        abort(404)
    return topic


@bp.get(f"/<{ID}:topic_id>")
@roles_required(*MARKETING)
def edit(topic_id: int) -> Response:
    topic = _topic_or_404(topic_id)
    values = {"slug": topic.slug, "name": topic.name, "description": topic.description}
    return _render("web/admin/topics/topic.html", topic=topic, values=values)


@bp.post(f"/<{ID}:topic_id>")
@roles_required(*MARKETING)
def update(topic_id: int) -> Response:
    topic = _topic_or_404(topic_id)
    values = {"slug": topic.slug, **_values(("name", "description"))}
    try:
        args = TOPIC_EDIT.load({k: v for k, v in values.items() if k != "slug"})
    except ValidationError as exc:
        errors = flatten(exc.messages)
        return _render(
            "web/admin/topics/topic.html", 422, topic=topic, values=values, errors=errors
        )
    form_editing.update_topic(db.session, topic, args["name"], args.get("description", ""))
    flash(f"Topic {topic.slug} saved.", "ok")
    return redirect(url_for(".index"))
