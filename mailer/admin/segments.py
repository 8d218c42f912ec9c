"""Segments: the list, the rule builder with its live count and sample, saving and deleting.

The builder is drawn by the server (`mailer.segments.builder_form`): menus that change its
shape post the form to `_builder`, which draws it again; values post to `_preview`, which
answers the count and a sample and puts each condition's errors in place (htmx out-of-band).
Without JavaScript the same buttons post the whole page, which is drawn again.

A sample lists members' addresses: each one shown is put on the staff audit log.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from mailer.admin.access import MARKETING, roles_required, staff
from mailer.admin.pagination import page_arg
from mailer.api.fields import MAX_ID
from mailer.compliance import staff_log
from mailer.database import utcnow
from mailer.extensions import db
from mailer.segments import (
    builder_form,
    builder_nodes,
    builder_tree,
    catalog,
    choices,
    manage,
    service,
    summary,
)
from mailer.segments.builder_nodes import Group
from mailer.segments.builder_tree import Built
from mailer.segments.models import Segment
from mailer.segments.rules import MAX_DEPTH

bp = Blueprint("admin_segments", __name__, url_prefix="/admin/segments")

ID = f"int(max={MAX_ID})"
PER_PAGE = 25
SAMPLE = 20
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


def _segment_or_404(segment_id: int) -> Segment:
    try:
        return service.get(db.session, segment_id)
    except service.SegmentNotFound:
        abort(404)


def _references(tree: dict[str, Any]) -> dict[str, list[str]]:
    return service.check_references(db.session, tree)


def _preview(built: Built) -> dict[str, Any]:
    """The count and a sample of the members, or nothing while the rules are invalid."""
    if built.tree is None:
        return {"count": None, "sample": []}
    now = utcnow()
    count = service.count(db.session, built.tree, now=now)
    sample = service.sample(db.session, built.tree, limit=SAMPLE, now=now) if count else []
    if sample:
        rule = request.url_rule.rule if request.url_rule is not None else request.path
        staff_log.record(
            db.session,
            staff(),
            "segments.sample",
            f"{request.method} {rule}",
            details={"shown": len(sample)},
        )
    return {"count": count, "sample": sample}


def _field_menu(found: choices.Choices) -> list[tuple[str, list[tuple[str, str]]]]:
    """The field menu: (group label, [(value, label)]), attributes from what profiles have."""
    menu: dict[str, list[tuple[str, str]]] = {group: [] for group in catalog.GROUP_ORDER}
    for spec in catalog.FIELD_LIST:
        if spec.id == "attribute":
            for key in found.attributes:
                label = f"{key.key} ({catalog.TYPE_LABELS[key.type]})"
                menu[spec.group].append((builder_nodes.ATTRIBUTE + key.key, label))
            menu[spec.group].append((builder_nodes.ATTRIBUTE, "Other attribute…"))
        else:
            menu[spec.group].append((spec.id, spec.label))
    return list(menu.items())


def _context(built: Built, found: choices.Choices) -> dict[str, Any]:
    menu = _field_menu(found)
    return {
        "root": built.root,
        "found": found,
        "field_menu": menu,
        "known_choices": {value for _, options in menu for value, _ in options},
        "catalog": catalog,
        "Kind": catalog.Kind,
        "modes": builder_nodes.MODE_LABELS,
        "types": catalog.TYPE_LABELS,
        "max_depth": MAX_DEPTH,
        "depth": builder_form.depth,
        "status_options": [choices.Option(s, s) for s in ("active", "pending", "unsubscribed")],
        "yes_no": [choices.Option("true", "yes"), choices.Option("false", "no")],
    }


def _name_errors(name: str) -> list[str]:
    if not name.strip():
        return ["Give the segment a name."]
    if len(name.strip()) > service.MAX_NAME:
        return [f"At most {service.MAX_NAME} characters."]
    if any(ch in _CONTROL for ch in name):
        return ["Use letters, digits and punctuation; no control characters."]
    return []


def _page(
    segment: Segment | None,
    built: Built,
    found: choices.Choices,
    name: str,
    errors: dict[str, list[str]],
    status: int = 200,
) -> tuple[str, int]:
    page = render_template(
        "web/admin/segments/edit.html",
        segment=segment,
        name=name,
        errors=errors,
        preview=_preview(built),
        **_context(built, found),
    )
    return page, status


def _found() -> choices.Choices:
    return choices.load(db.session)


def _post(segment: Segment | None) -> Any:
    """Save, or apply a builder action and draw the page again (the no-script path)."""
    action = request.form.get("action", "save")
    name = request.form.get("name", "")
    found = _found()
    if action != "save":
        built = builder_form.build(request.form, found, action, _references)
        return _page(segment, built, found, name, {})
    built = builder_form.build(request.form, found, "", _references)
    errors: dict[str, list[str]] = {}
    if _name_errors(name):
        errors["name"] = _name_errors(name)
    if built.tree is None:
        errors["rules"] = ["Some conditions need fixing: see the marks below."]
    if not errors:
        assert built.tree is not None
        try:
            if segment is None:
                saved = service.create(db.session, name, built.tree)
            else:
                saved = service.update(db.session, segment.id, name=name, rules=built.tree)
        except service.SegmentError as exc:
            db.session.rollback()
            errors = {k: v for k, v in exc.errors.items() if not k.startswith("rules")}
            rule_errors = {k: v for k, v in exc.errors.items() if k.startswith("rules")}
            if rule_errors:
                built = builder_tree.check(built.root, lambda _tree: rule_errors)
                errors["rules"] = ["Some conditions need fixing: see the marks below."]
        else:
            flash(f"Segment “{saved.name}” saved.", "ok")
            return redirect(url_for(".index"))
    return _page(segment, built, found, name, errors, 422)


@bp.get("/")
@roles_required(*MARKETING)
def index() -> str:
    search = request.args.get("q", "").strip()[:200]
    page = page_arg()
    rows, total = manage.page(db.session, page, PER_PAGE, search)
    return render_template(
        "web/admin/segments/index.html",
        rows=[(segment, summary.describe(segment.rules)) for segment in rows],
        total=total,
        page=page,
        per_page=PER_PAGE,
        search=search,
    )


@bp.get("/new")
@roles_required(*MARKETING)
def new() -> Any:
    built = builder_tree.check(Group("all"), _references)
    return _page(None, built, _found(), "", {})


@bp.post("/new")
@roles_required(*MARKETING)
def create() -> Any:
    return _post(None)


@bp.get(f"/<{ID}:segment_id>")
@roles_required(*MARKETING)
def edit(segment_id: int) -> Any:
    segment = _segment_or_404(segment_id)
    found = _found()
    built = builder_tree.check(builder_tree.from_tree(segment.rules, found), _references)
    return _page(segment, built, found, segment.name, {})


@bp.post(f"/<{ID}:segment_id>")
@roles_required(*MARKETING)
def update(segment_id: int) -> Any:
    return _post(_segment_or_404(segment_id))


@bp.post(f"/<{ID}:segment_id>/delete")
@roles_required(*MARKETING)
def delete(segment_id: int) -> Response:
    _segment_or_404(segment_id)
    try:
        name = manage.delete(db.session, segment_id)
    except service.SegmentError as exc:
        db.session.rollback()
        flash(" ".join(exc.errors["segment"]), "error")
        return redirect(url_for(".edit", segment_id=segment_id))
    flash(f"Segment “{name}” deleted.", "ok")
    return redirect(url_for(".index"))


@bp.get(f"/<{ID}:segment_id>/count", endpoint="_count")
@roles_required(*MARKETING)
def count(segment_id: int) -> str:
    segment = _segment_or_404(segment_id)
    members = service.count(db.session, segment.rules)
    return render_template("web/admin/segments/_count.html", count=members)


@bp.post("/builder", endpoint="_builder")
@roles_required(*MARKETING)
def builder() -> str:
    """The builder drawn again after a menu or button changed its shape, with the preview."""
    action = request.form.get("action", "refresh")
    found = _found()
    built = builder_form.build(request.form, found, action or "refresh", _references)
    return render_template(
        "web/admin/segments/_builder_response.html",
        preview=_preview(built),
        **_context(built, found),
    )


@bp.post("/preview", endpoint="_preview")
@roles_required(*MARKETING)
def preview() -> str:
    """The count and sample for what the form holds, and each condition's errors."""
    built = builder_form.build(request.form, choices.Choices(), "", _references)
    return render_template(
        "web/admin/segments/_preview_response.html",
        preview=_preview(built),
        root=built.root,
    )
