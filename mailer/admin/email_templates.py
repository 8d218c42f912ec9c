"""Templates: the list, the MJML editor with its live preview, and test sends.

The preview renders what is in the editor, unsaved, for the sample subscriber (or a chosen
one) through the same checks and renderer as the API (`rendering.preview`). The rendered
email is never put into our page: it is parked under the editor's slot
(`mailer.campaigns.previews`) and shown by two frames that load it from its own URL under its
own CSP, at desktop and at phone width.
"""

from __future__ import annotations

from types import SimpleNamespace
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
from flask_wtf import FlaskForm
from redis.exceptions import RedisError
from sqlalchemy import select
from wtforms import StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from mailer.admin.access import MARKETING, roles_required, staff
from mailer.admin.campaigns.forms import (
    TestSendForm,
    no_control,
    one_line,
    parse_addresses,
    unix_lines,
)
from mailer.admin.campaigns.lookup import settings
from mailer.admin.pagination import page_arg
from mailer.api.fields import MAX_ID, normalised_address
from mailer.campaigns import catalogue, previews, rendering, template_proofs, templates
from mailer.campaigns.content import NO_UNSUBSCRIBE, has_unsubscribe_link
from mailer.campaigns.models import Template
from mailer.campaigns.problems import Located, locate
from mailer.campaigns.sandbox import ContentError
from mailer.compliance import staff_log
from mailer.config import ROOT
from mailer.delivery.wire import HeaderInjection
from mailer.emails.mjml import MjmlError, MjmlUnavailable
from mailer.extensions import db, jobs
from mailer.subscribers.models import Subscriber

bp = Blueprint("admin_templates", __name__, url_prefix="/admin/templates")


@bp.before_request
def _room_for_a_template() -> None:
    request.max_content_length = templates.REQUEST_MAX_BYTES


ID = f"int(max={MAX_ID})"
PER_PAGE = 25
# The framed preview: the marketer's HTML may style itself and show images, nothing more.
FRAME_CSP = (
    "default-src 'none'; img-src data: https: http:; style-src 'unsafe-inline' https:; "
    "font-src data: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox"
)
# What a new template starts from: a working layout with the unsubscribe link in place.
STARTER = ROOT / "templates" / "web" / "admin" / "templates" / "starter.mjml"


class TemplateForm(FlaskForm):
    name = StringField(
        "Name", validators=[InputRequired("Give the template a name."), Length(max=200), one_line]
    )
    mjml = TextAreaField(
        "MJML",
        validators=[InputRequired("Write the template's MJML."), Length(max=500_000), no_control],
        filters=[unix_lines],
    )
    text = TextAreaField(
        "Text part (optional: left empty, it is generated from the HTML)",
        validators=[Optional(), Length(max=500_000), no_control],
        filters=[unix_lines],
    )
    preview_as = StringField("Preview as (a subscriber's email; empty: a sample)")


def _node() -> str:
    return current_app.config["MAILER"].node_binary


def _template(template_id: int) -> Template:
    template = templates.get(db.session, template_id)
    if template is None:
        abort(404)
    return template


@bp.get("/")
@roles_required(*MARKETING)
def index() -> str:
    name = request.args.get("q", "").strip()[:200]
    page = page_arg()
    rows, total = catalogue.templates_page(db.session, page, PER_PAGE, name)
    return render_template(
        "web/admin/templates/index.html",
        rows=rows,
        total=total,
        page=page,
        per_page=PER_PAGE,
        q=name,
        ready=lambda t: templates.readiness(t).campaign_ready,
    )


def _editor(
    form: TemplateForm,
    template: Template | None,
    problems: list[Located] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    problems = problems or []
    used = catalogue.campaigns_using(db.session, [template.id]) if template else {}
    html = render_template(
        "web/admin/templates/edit.html",
        form=form,
        template=template,
        problems=problems,
        warnings=_warnings(form.mjml.data or ""),
        slot=previews.new_slot(),
        used=used.get(template.id, 0) if template else 0,
        test_form=TestSendForm(formdata=None),
    )
    return html, status


def _warnings(mjml: str) -> list[str]:
    return [] if not mjml or has_unsubscribe_link(mjml) else [NO_UNSUBSCRIBE]


def _content_problems(exc: Exception) -> list[Located]:
    if isinstance(exc, ContentError):
        return locate(exc.errors)
    if isinstance(exc, MjmlError):
        return locate({"mjml": [str(p) for p in exc.problems]})
    return locate({"mjml": [str(exc)]})


@bp.get("/new")
@roles_required(*MARKETING)
def new() -> tuple[str, int]:
    form = TemplateForm(formdata=None, data={"mjml": STARTER.read_text(encoding="utf-8")})
    return _editor(form, None)


@bp.post("/new")
@roles_required(*MARKETING)
def create() -> Any:
    form = TemplateForm()
    if not form.validate_on_submit():
        return _editor(form, None, status=422)
    try:
        template = templates.create(
            db.session,
            name=form.name.data,
            mjml=form.mjml.data,
            text=form.text.data or None,
            node=_node(),
        )
    except (ContentError, MjmlUnavailable) as exc:
        db.session.rollback()
        return _editor(form, None, _content_problems(exc), status=422)
    db.session.commit()
    flash(f"Template “{template.name}” saved.", "ok")
    return redirect(url_for(".edit", template_id=template.id))


@bp.get(f"/<{ID}:template_id>")
@roles_required(*MARKETING)
def edit(template_id: int) -> tuple[str, int]:
    template = _template(template_id)
    form = TemplateForm(formdata=None, obj=template)
    return _editor(form, template)


@bp.post(f"/<{ID}:template_id>")
@roles_required(*MARKETING)
def update(template_id: int) -> Any:
    template = _template(template_id)
    form = TemplateForm()
    if not form.validate_on_submit():
        return _editor(form, template, status=422)
    try:
        templates.update(
            db.session,
            template,
            name=form.name.data,
            mjml=form.mjml.data,
            text=form.text.data or None,
            node=_node(),
        )
    except (ContentError, MjmlUnavailable) as exc:
        db.session.rollback()
        return _editor(form, _template(template_id), _content_problems(exc), status=422)
    db.session.commit()
    flash(f"Template “{template.name}” saved.", "ok")
    return redirect(url_for(".edit", template_id=template.id))


# --- live preview ---------------------------------------------------------------------------


def _chosen_subscriber(value: str, slot: str) -> tuple[Subscriber | None, str | None]:
    """The subscriber to preview as, or an error for the `preview_as` field. Showing a real
    person's data is recorded in the staff audit log, once per editor and person."""
    if not value.strip():
        return None, None
    try:
        address = normalised_address(value)
    except ValueError:
        return None, "Enter a subscriber's email address, or leave it empty for a sample."
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None:
        return None, f"No subscriber with the address {address}."
    try:
        first = previews.first_look(jobs.redis, current_user.id, slot, subscriber.id)
    except RedisError:
        first = True  # when in doubt, record the access
    if first:
        staff_log.record(
            db.session,
            staff(),
            "template.preview",
            f"{request.method} {request.url_rule.rule if request.url_rule else request.path}",
            subject_email=subscriber.email,
            subscriber_id=subscriber.id,
        )
    return subscriber, None


@bp.post("/preview")
@roles_required(*MARKETING)
def preview() -> str:
    """htmx: render the editor's source, unsaved. Answers the problems panel, and the two
    preview frames (out of band) when it rendered; problems leave the last good preview."""
    form = request.form
    slot = form.get("slot", "")
    mjml = unix_lines(form.get("mjml", "")) or ""
    problems: list[Located] = []
    rendered = False
    if not previews.valid_slot(slot):
        problems = locate({"slot": ["Reload the page to preview again."]})
    elif not mjml.strip():
        problems = locate({"mjml": ["Write some MJML to preview."]})
    else:
        subscriber, error = _chosen_subscriber(form.get("preview_as", ""), slot)
        if error:
            problems = locate({"preview_as": [error]})
        else:
            draft = SimpleNamespace(
                name=form.get("name", "")[:200],
                mjml=mjml,
                text=unix_lines(form.get("text")) or None,
            )
            recipient = rendering.Recipient.from_subscriber(subscriber) if subscriber else None
            try:
                result = rendering.preview(db.session, draft, recipient, node=_node())
            except (ContentError, MjmlUnavailable) as exc:
                problems = _content_problems(exc)
            else:
                try:
                    previews.store(jobs.redis, current_user.id, slot, result["html"])
                    rendered = True
                except RedisError:
                    problems = locate({"preview": ["The preview store (Redis) is not reachable."]})
    return render_template(
        "web/admin/templates/_preview.html",
        problems=problems,
        warnings=_warnings(mjml),
        rendered=rendered,
        frame_url=url_for(".frame", slot=slot, v=previews.version(mjml, form.get("text", "")))
        if rendered
        else None,
    )


@bp.get("/preview/<slot>")
@roles_required(*MARKETING)
def frame(slot: str) -> Response:
    """The rendered email itself, for the preview frames only."""
    try:
        html = previews.load(jobs.redis, current_user.id, slot)
    except RedisError:
        html = None
    if html is None:
        abort(404)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = FRAME_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


# --- test send -------------------------------------------------------------------------------


@bp.post(f"/<{ID}:template_id>/test")
@roles_required(*MARKETING)
def test_send(template_id: int) -> Any:
    """Send the saved template as a test (htmx answers a fragment; a plain POST a page)."""
    template = _template(template_id)
    form = TestSendForm()
    addresses, errors = parse_addresses(form.addresses.data or "")
    results: list[dict[str, str]] = []
    if not form.validate_on_submit():
        errors = [m for ms in form.errors.values() for m in ms]
    if not errors:
        try:
            results = template_proofs.send_template_test(
                db.session,
                settings(),
                current_app.extensions["mailer.tokens"],
                template.id,
                addresses,
                subject=form.subject.data or "",
            )
        except (ContentError, MjmlError, HeaderInjection, MjmlUnavailable) as exc:
            errors = [p.message for p in _content_problems(exc)]
        except OSError as exc:  # the SMTP server could not be reached
            errors = [f"The mail server could not be reached: {exc}"]
    if request.headers.get("HX-Request"):
        return render_template(
            "web/admin/campaigns/_test_result.html", errors=errors, results=results
        )
    for message in errors:
        flash(message, "error")
    if results:
        flash(f"Test sent to {', '.join(r['address'] for r in results)}.", "ok")
    return redirect(url_for(".edit", template_id=template.id))
