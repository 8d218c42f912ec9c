"""Campaign content: what a template sees, and the full check run before content is used.

Templates see plain values only: `Recipient` (built by the sender from a Subscriber row) is
turned into read-only `Record`s, never ORM objects. `build_content` compiles the MJML and runs
every check (MJML errors, the Jinja sandbox's tree checks and a trial render, the visible
unsubscribe link), naming each field and line; templates use it on save, campaigns at freeze.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jinja2 import Template
from jinja2.exceptions import SecurityError
from sqlalchemy.orm import Session

from mailer.campaigns import instrument, sandbox, textpart
from mailer.campaigns.sandbox import ContentError, Problem, Record, freeze_value
from mailer.emails.mjml import MjmlError, compiled_html

# A visible unsubscribe link: an href whose value uses `unsubscribe_url`.
_UNSUBSCRIBE_HREF = re.compile(
    r"""href\s*=\s*(["'])[^"']*\{\{[^}]*\bunsubscribe_url\b[^}]*\}\}[^"']*\1""", re.IGNORECASE
)
NO_UNSUBSCRIBE = (
    'there is no visible unsubscribe link: add <a href="{{ unsubscribe_url }}">Unsubscribe</a>'
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The subject cannot name itself.
SUBJECT_CAMPAIGN_FIELDS = sandbox.CAMPAIGN_FIELDS - {"subject"}


class CampaignContentError(ContentError):
    """The campaign's content cannot be sent; `errors` names each field and line."""


@dataclass(frozen=True)
class Recipient:
    """Built by the sender from a Subscriber row; no ORM objects in rendering."""

    subscriber_id: int
    email: str
    name: str
    locale: str
    attributes: dict
    tracking_enabled: bool
    delivery_id: int | None  # None for test sends and previews

    @classmethod
    def from_subscriber(cls, subscriber: Any, delivery_id: int | None = None) -> Recipient:
        return cls(
            subscriber_id=subscriber.id,
            email=subscriber.email,
            name=subscriber.name or "",
            locale=subscriber.locale or "en",
            attributes=dict(subscriber.attributes or {}),
            tracking_enabled=bool(subscriber.tracking_enabled),
            delivery_id=delivery_id,
        )


SAMPLE = Recipient(
    subscriber_id=0,
    email="sample@example.com",
    name="Sam Sample",
    locale="en",
    attributes={"first_name": "Sam", "city": "Oslo", "plan": "pro"},
    tracking_enabled=False,
    delivery_id=None,
)

# Previews link nowhere: never a real subscriber's working unsubscribe link.
PREVIEW_URLS = {
    "unsubscribe_url": "#unsubscribe",
    "preferences_url": "#preferences",
    "view_in_browser_url": "#view-in-browser",
}


def has_unsubscribe_link(source: str) -> bool:
    return _UNSUBSCRIBE_HREF.search(source) is not None


def _subscriber_values(recipient: Recipient) -> dict[str, Any]:
    attributes = recipient.attributes or {}
    words = recipient.name.split()
    first = attributes.get("first_name") or (words[0] if words else "")
    last = attributes.get("last_name") or " ".join(words[1:])
    return {
        "email": recipient.email,
        "name": recipient.name,
        "first_name": first if isinstance(first, str) else "",
        "last_name": last if isinstance(last, str) else "",
        "locale": recipient.locale,
        "attributes": attributes,
    }


def context_for(recipient: Recipient, urls: dict[str, str]) -> dict[str, Any]:
    """What a template sees of `recipient`; add `campaign` before rendering."""
    subscriber = freeze_value(_subscriber_values(recipient))
    return {
        "subscriber": subscriber,
        "attributes": subscriber["attributes"] if "attributes" in subscriber else Record({}),
        **urls,
    }


def sample_context(name: str, subject: str) -> dict[str, Any]:
    """The sample subscriber, with stand-ins for our tracking placeholders."""
    context = context_for(SAMPLE, PREVIEW_URLS)
    context["campaign"] = Record({"name": name, "subject": subject})
    context[instrument.CLICK] = lambda i: f"https://example.invalid/click/{int(i)}"
    context[instrument.OPEN_PIXEL] = "https://example.invalid/open"
    return context


def one_line(text: str) -> str:
    """A rendered subject as a header wants it: one line, no control characters."""
    return _CONTROL.sub("", " ".join(text.split()))


def content_failure(exc: Exception, field: str) -> CampaignContentError:
    """A render that failed on one recipient's data (a missing value, or a render budget limit
    reached, see `budget`), as a content error with its line."""
    kind = "not allowed" if isinstance(exc, SecurityError) else "template error"
    problem = Problem(sandbox.error_line(exc), f"{kind}: {sandbox.describe(exc)}")
    return CampaignContentError(field, [str(problem)])


def render_text(template: Template, context: dict[str, Any], field: str) -> str:
    try:
        return template.render(context)
    except Exception as exc:  # user content failing on this recipient's data
        raise content_failure(exc, field) from exc


@dataclass(frozen=True)
class Content:
    subject: str
    html: str  # compiled MJML with the preheader in; Jinja still in place
    text: str


def _texts(errors: dict[str, list[Problem]]) -> dict[str, list[str]]:
    return {f: list(dict.fromkeys(sandbox.messages(p))) for f, p in errors.items() if p}


def content_error(errors: dict[str, list[Problem]]) -> CampaignContentError:
    texts = _texts(errors)
    first = next(iter(texts))
    return CampaignContentError(first, texts[first], texts)


def check_frozen(subject: str, html: str, text: str) -> None:
    """Check stored content again before trusting what the database holds."""
    problems = {
        "subject": sandbox.tree_problems(subject, campaign_fields=SUBJECT_CAMPAIGN_FIELDS),
        "mjml": sandbox.tree_problems(html),
        "text": sandbox.tree_problems(text),
    }
    if any(problems.values()):
        raise content_error(problems)


def build_content(
    session: Session,
    *,
    mjml: str,
    text: str | None,
    subject: str = "",
    preheader: str = "",
    name: str = "",
    require_unsubscribe: bool = False,
    node: str = "node",
) -> Content:
    """Compile `mjml` and check all of it: raises `CampaignContentError` naming every field.

    Jinja is checked on the MJML source (so lines match what the user wrote), again on the
    compiled HTML (what is actually rendered), and by a trial render with a sample subscriber
    of the exact templates a send uses, tracking placeholders included.
    Raises `mjml.MjmlUnavailable` when Node.js is missing. Reads (and may fill) the compiled
    template cache in its own transaction; commits nothing of the caller's. On SQLite, call it
    before writing in the caller's transaction: that cache insert would wait for its lock.
    """
    errors: dict[str, list[Problem]] = {
        "subject": sandbox.tree_problems(subject, campaign_fields=SUBJECT_CAMPAIGN_FIELDS),
        "preheader": sandbox.tree_problems(preheader),
        "mjml": sandbox.tree_problems(mjml),
        "text": sandbox.tree_problems(text) if text is not None else [],
    }
    if require_unsubscribe and not errors["mjml"] and not has_unsubscribe_link(mjml):
        errors["mjml"].append(Problem(None, NO_UNSUBSCRIBE))
    if errors["mjml"]:
        raise content_error(errors)
    try:
        compiled = compiled_html(session, mjml, node)
    except MjmlError as exc:
        texts = {**_texts(errors), "mjml": [str(p) for p in exc.problems]}  # "line 3: ..."
        first = next(iter(texts))
        raise CampaignContentError(first, texts[first], texts) from exc
    where = "the compiled HTML"
    errors["mjml"] = sandbox.tree_problems(compiled, where=where)
    if any(errors.values()):
        raise content_error(errors)
    content = Content(
        subject=subject,
        html=instrument.insert_preheader(compiled, preheader),
        text=text if text is not None else textpart.from_html(compiled),
    )
    context = sample_context(name, subject)
    tracked, _urls = instrument.instrument(content.html, clicks=True, opens=True)
    errors["subject"] = sandbox.trial_problems(subject, context, autoescape=False)
    errors["mjml"] = sandbox.trial_problems(tracked, context, autoescape=True, where=where)
    text_problems = sandbox.trial_problems(content.text, context, autoescape=False)
    errors["text" if text is not None else "mjml"] += text_problems
    if any(errors.values()):
        raise content_error(errors)
    return content
