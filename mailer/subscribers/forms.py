"""Topics and forms. A form's consent text is versioned: a change adds a version, old ones stay."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.subscribers.models import Form, FormVersion, Topic


def ensure_topic(session: Session, slug: str, name: str, description: str = "") -> Topic:
    """Get or create; flushes, the caller commits."""
    topic = session.scalar(select(Topic).where(Topic.slug == slug))
    if topic is None:
        topic = Topic(slug=slug, name=name, description=description)
        session.add(topic)
        session.flush()
    return topic


def set_consent_text(session: Session, form: Form, text: str) -> FormVersion:
    """Add a version when the text differs from the current one. Flushes, the caller commits."""
    text = text.strip()
    if form.versions and form.current_version.consent_text == text:
        return form.current_version
    version = FormVersion(
        form=form,
        version=(form.current_version.version + 1) if form.versions else 1,
        consent_text=text,
        consent_text_sha256=FormVersion.digest(text),
    )
    session.add(version)
    session.flush()
    session.refresh(form, ["versions"])
    return version


def ensure_form(
    session: Session,
    slug: str,
    name: str,
    topics: Sequence[Topic],
    consent_text: str,
    locale: str | None = None,
    ask_name: bool = False,
    welcome_enabled: bool = False,
    allowed_origins: Sequence[str] = (),
) -> Form:
    """Get or create a form by slug; an existing form keeps its settings. Commits."""
    form = session.scalar(select(Form).where(Form.slug == slug))
    if form is None:
        form = Form(
            slug=slug,
            name=name,
            locale=locale,
            ask_name=ask_name,
            welcome_enabled=welcome_enabled,
            allowed_origins=list(allowed_origins),
            topics=list(topics),
        )
        session.add(form)
        session.flush()
        set_consent_text(session, form, consent_text)
    session.commit()
    return form


DEMO_CONSENT = (
    "Yes, send me the Demo newsletter by email, about once a month. I can unsubscribe at any "
    "time with one click. My data is handled as described in the privacy policy."
)


def ensure_demo(session: Session, base_origin: str) -> Form:
    """The demo form, allowing embeds from wherever the app is served now. Commits."""
    news = ensure_topic(session, "news", "Newsletter", "News and updates, about once a month.")
    form = ensure_form(
        session,
        "demo",
        "Subscribe to our newsletter",
        [news],
        DEMO_CONSENT,
        locale="en",
        ask_name=True,
        welcome_enabled=True,
        allowed_origins=[base_origin],
    )
    if base_origin not in form.allowed_origins:
        form.allowed_origins = [*form.allowed_origins, base_origin]
        session.commit()
    return form
