"""Email templates: MJML with Jinja personalisation, checked in full whenever they are saved.

Saving compiles the MJML (strict: errors carry line numbers) and runs the sandbox checks, so
a template that would fail or reach Python internals is refused at save time, naming the
field and line, instead of failing while a campaign sends. A template without a visible
unsubscribe link may be saved (a draft) but is not `campaign_ready`, and campaigns refuse it.

These functions add or change rows and flush; the caller commits. Creating twice makes two
templates; updating with the same values again is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.campaigns.content import NO_UNSUBSCRIBE, build_content, has_unsubscribe_link
from mailer.campaigns.models import Template

_UNSET = object()
# A request carrying a template (source up to 500,000 characters, JSON-escaped or form-encoded)
# may be this large; every other request keeps the app's small body limit.
REQUEST_MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Readiness:
    campaign_ready: bool
    reason: str | None


def readiness(template: Template) -> Readiness:
    """Whether campaigns may use `template` (they need a visible unsubscribe link)."""
    if has_unsubscribe_link(template.mjml):
        return Readiness(True, None)
    return Readiness(False, NO_UNSUBSCRIBE)


def _validate(session: Session, name: str, mjml: str, text: str | None, node: str) -> None:
    build_content(session, mjml=mjml, text=text, name=name, node=node)


def create(
    session: Session, *, name: str, mjml: str, text: str | None = None, node: str = "node"
) -> Template:
    """Raises `ContentError` (fields `mjml`, `text`) or `MjmlUnavailable`."""
    _validate(session, name, mjml, text, node)
    template = Template(name=name, mjml=mjml, text=text)
    session.add(template)
    session.flush()
    return template


def update(
    session: Session,
    template: Template,
    *,
    name: str | None = None,
    mjml: str | None = None,
    text: str | object | None = _UNSET,
    node: str = "node",
) -> Template:
    """Change the given fields (`text=None` clears an authored text part). Campaigns that
    already started keep what they froze."""
    new_name = name if name is not None else template.name
    new_mjml = mjml if mjml is not None else template.mjml
    new_text = template.text if text is _UNSET else text
    _validate(session, new_name, new_mjml, new_text, node)  # type: ignore[arg-type]
    template.name = new_name
    template.mjml = new_mjml
    template.text = new_text  # type: ignore[assignment]
    session.flush()
    return template


def get(session: Session, template_id: int) -> Template | None:
    return session.get(Template, template_id)


def list_all(session: Session) -> list[Template]:
    return list(session.scalars(select(Template).order_by(Template.id)))
