"""Rows for tests, made through the same services the product uses."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailer.subscribers import forms
from mailer.subscribers.models import Form

CONSENT = "Yes, email me the newsletter. I can unsubscribe at any time."


def make_form(
    session: Session,
    slug: str = "news",
    topics: tuple[str, ...] = ("news",),
    locale: str | None = "en",
    ask_name: bool = True,
    welcome: bool = False,
    origins: tuple[str, ...] = ("https://shop.example",),
    consent_text: str = CONSENT,
) -> Form:
    topic_rows = [forms.ensure_topic(session, t, t.title(), f"All about {t}") for t in topics]
    form = forms.ensure_form(
        session,
        slug,
        f"{slug.title()} sign-up",
        topic_rows,
        consent_text,
        locale=locale,
        ask_name=ask_name,
        welcome_enabled=welcome,
        allowed_origins=origins,
    )
    return form
