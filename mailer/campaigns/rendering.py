"""Per-recipient rendering of campaign messages: compile and check once, render many.

`freeze` compiles the template, runs every check and stores the campaign's subject, HTML and
text (Jinja still in place) on the campaign, so later template edits change nothing that is
being sent. `PreparedCampaign` parses those once, rewrites links for tracking once, and then
each `render` is a Jinja render of subject, HTML and text in the sandbox, a few signed
tokens, the MIME bytes and, when configured, a DKIM signature. No ORM objects reach a
template: recipients are plain `Recipient` values and templates see read-only `Record`s.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from jinja2 import Template
from sqlalchemy.orm import Session

from mailer.campaigns import instrument, sandbox
from mailer.campaigns.content import (
    PREVIEW_URLS,
    SAMPLE,
    CampaignContentError,
    Recipient,
    build_content,
    check_frozen,
    content_failure,
    context_for,
    one_line,
    render_text,
    sample_context,
)
from mailer.campaigns.identity import message_id as campaign_message_id
from mailer.campaigns.sandbox import Record
from mailer.config import Settings
from mailer.delivery import dkim, wire
from mailer.delivery.addresses import wire_address
from mailer.subscribers.links import Links
from mailer.tokens import Tokens
from mailer.tracking.links import TrackingLinks

__all__ = [
    "CampaignContentError",
    "PreparedCampaign",
    "Recipient",
    "Rendered",
    "freeze",
    "preview",
]

TEST_PREFIX = "[Test] "


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    message_id: str  # without <>
    data: bytes  # the full RFC 5322 message, CRLF, DKIM-signed if configured
    envelope_from: str  # return path (campaign.from_email)
    envelope_to: str  # wire address of the recipient
    smtputf8: bool


def _node(node: str | None) -> str:
    if node is not None:
        return node
    from flask import current_app, has_app_context

    return current_app.config["MAILER"].node_binary if has_app_context() else "node"


def freeze(session: Session, campaign: Any, *, node: str | None = None) -> None:
    """Compile the template, run every check (SSTI, unsubscribe link), and fill
    campaign.frozen_subject/frozen_html/frozen_text. Raises CampaignContentError(field,
    problems) with line numbers (`errors` has every field). Does not commit; rerunning
    re-freezes from the current template, so call it when sending starts."""
    template = campaign.template
    content = build_content(
        session,
        mjml=template.mjml,
        text=template.text,
        subject=campaign.subject,
        preheader=campaign.preheader or "",
        name=campaign.name,
        require_unsubscribe=True,
        node=_node(node),
    )
    campaign.frozen_subject = content.subject
    campaign.frozen_html = content.html
    campaign.frozen_text = content.text


# --- rendering ----------------------------------------------------------------------------


class _Body:
    """An HTML or text template and the quoted-printable of its constant text."""

    def __init__(self, template: Template, field: str, sample: dict[str, Any]) -> None:
        self.template = template
        self.field = field
        self.qp = wire.QuotedPrintable()
        # Only an optimisation: if the sample fails, the real render reports the problem.
        with contextlib.suppress(CampaignContentError):
            self.qp.learn(self.pieces(sample))

    def pieces(self, context: dict[str, Any]) -> list[str]:
        """The render as Jinja yields it: constant text and values, in order."""
        template = self.template
        try:
            return list(template.root_render_func(template.new_context(context)))
        except Exception:  # user content failing on this recipient's data
            try:
                template.environment.handle_exception()  # re-raises with template lines
            except Exception as exc:
                raise content_failure(exc, self.field) from exc
            raise


class _Templates:
    """The campaign's content as parsed Jinja templates (checked again before parsing: the
    database is not trusted more than the user)."""

    def __init__(
        self, name: str, subject: str, html: str, text: str, *, clicks: bool, opens: bool
    ) -> None:
        check_frozen(subject, html, text)
        sample = sample_context(name, subject)
        self.subject = sandbox.TEXT.from_string(subject)
        self.html = _Body(sandbox.HTML.from_string(html), "mjml", sample)
        self.text = _Body(sandbox.TEXT.from_string(text), "text", sample)
        self.tracked: _Body | None = None
        self.urls: list[str] = []
        if clicks or opens:
            tracked, self.urls = instrument.instrument(html, clicks=clicks, opens=opens)
            self.tracked = _Body(sandbox.HTML.from_string(tracked), "mjml", sample)


def _address(value: str, header: str) -> str:
    """The address in `value` ("a@b" or "Name <a@b>"), refused if it holds a line break."""
    return parseaddr(wire.clean(value, header))[1] or value


def _wire_address(address: str) -> tuple[str, bool]:
    """`wire_address`, with a fast path for plain ASCII addresses (stored normalised at
    sign-up), which it would return unchanged but for the domain's case, without SMTPUTF8."""
    if address.isascii():
        return address, False
    return wire_address(address)


class PreparedCampaign:
    """One campaign ready to render for any number of recipients (no ORM objects kept)."""

    def __init__(
        self,
        *,
        campaign_id: int,
        name: str,
        templates: _Templates,
        from_header: str,
        envelope_from: str,
        from_utf8: bool,
        fixed_headers: list[str],
        topic_slug: str,
        settings: Settings,
        tokens: Tokens,
        track_clicks: bool,
        track_opens: bool,
        test: bool,
    ) -> None:
        self.campaign_id = campaign_id
        self.name = name
        self.templates = templates
        self.from_header = from_header
        self.envelope_from = envelope_from
        self.from_utf8 = from_utf8
        self.fixed_headers = fixed_headers
        self.topic_slug = topic_slug
        self.secret_key = settings.secret_key
        self.domain = settings.server_name
        self.mailto = settings.unsubscribe_mailto
        self.links = Links(tokens, settings.base_url)
        self.tracking = TrackingLinks(tokens, settings.base_url)
        self.track_clicks = track_clicks
        self.track_opens = track_opens
        self.test = test
        self.dkim_key = dkim.DkimKey.load(
            settings.dkim_domain,
            settings.dkim_selector,
            settings.dkim_key_path,
            settings.dkim_private_key,
        )
        self.boundary = "=_mailer_" + secrets.token_hex(12)
        self.mime = wire.Alternative(self.boundary)
        # The canonical forms of what every message repeats, for the DKIM body hash.
        self.canon = dkim.BodyCanon(
            [
                *self.mime.framing,
                *templates.text.qp.constant(),
                *templates.html.qp.constant(),
                *(templates.tracked.qp.constant() if templates.tracked else ()),
            ]
            if self.dkim_key is not None
            else ()
        )

    @classmethod
    def from_campaign(
        cls, campaign: Any, topic: Any, settings: Settings, tokens: Tokens, *, test: bool = False
    ) -> PreparedCampaign:
        """Uses campaign.frozen_* if set, else raises CampaignContentError. test=True: subject
        prefixed "[Test] ", header X-Mailer-Test: 1, no tracking, links still work."""
        if campaign.frozen_html is None or campaign.frozen_subject is None:
            raise CampaignContentError(
                "template", ["the campaign's content is not frozen yet (freeze it first)"]
            )
        track_clicks = bool(campaign.track_clicks) and not test
        track_opens = bool(campaign.track_opens) and not test
        templates = _Templates(
            campaign.name,
            campaign.frozen_subject,
            campaign.frozen_html,
            campaign.frozen_text or "",
            clicks=track_clicks,
            opens=track_opens,
        )
        from_address, from_utf8 = wire_address(_address(campaign.from_email, "From"))
        domain = settings.server_name
        list_id = f"{topic.slug}.list-id.{domain}"
        fixed = []
        if campaign.reply_to:
            reply_address, reply_utf8 = wire_address(_address(campaign.reply_to, "Reply-To"))
            from_utf8 = from_utf8 or reply_utf8
            fixed.append(f"Reply-To: {wire.mailbox('', reply_address, 'Reply-To')}")
        fixed += [
            wire.header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            f"List-Id: {wire.quoted_phrase(topic.name or topic.slug, 'List-Id')} <{list_id}>",
            wire.header("Feedback-ID", f"{campaign.id}:{topic.slug}:mailer:{domain}"),
            "Precedence: bulk",
        ]
        if test:
            fixed.append("X-Mailer-Test: 1")
        return cls(
            campaign_id=campaign.id,
            name=campaign.name,
            templates=templates,
            from_header=f"From: {wire.mailbox(campaign.from_name, from_address, 'From')}",
            envelope_from=from_address,
            from_utf8=from_utf8,
            fixed_headers=fixed,
            topic_slug=topic.slug,
            settings=settings,
            tokens=tokens,
            track_clicks=track_clicks,
            track_opens=track_opens,
            test=test,
        )

    # -- per recipient --

    def _urls(self, recipient: Recipient) -> dict[str, str]:
        delivery_id = recipient.delivery_id
        return {
            "unsubscribe_url": self.links.unsubscribe(
                recipient.subscriber_id, [self.topic_slug], None
            ),
            "preferences_url": self.links.preferences(recipient.subscriber_id),
            "view_in_browser_url": (
                self.tracking.view_in_browser(delivery_id) if delivery_id is not None else "#"
            ),
        }

    def _parts(
        self, recipient: Recipient, urls: dict[str, str], tracking: bool
    ) -> tuple[str, _Body, list[str], list[str]]:
        """Subject, the HTML body used and the HTML and text pieces for one recipient."""
        context = context_for(recipient, urls)
        context["campaign"] = Record({"name": self.name})
        subject = one_line(render_text(self.templates.subject, context, "subject"))
        context["campaign"] = Record({"name": self.name, "subject": subject})
        body = self.templates.html
        delivery_id = recipient.delivery_id
        if tracking and delivery_id is not None and self.templates.tracked is not None:
            body = self.templates.tracked
            targets, click = self.templates.urls, self.tracking.click
            context[instrument.CLICK] = lambda i: click(delivery_id, targets[i], i)
            if self.track_opens:
                context[instrument.OPEN_PIXEL] = self.tracking.open_pixel(delivery_id)
        html = body.pieces(context)
        text = self.templates.text.pieces(context)
        if self.test:
            subject = TEST_PREFIX + subject
        return subject, body, html, text

    def page(self, recipient: Recipient) -> str:
        """The HTML as the "view in browser" page shows it: no pixel, links as written."""
        return "".join(self._parts(recipient, self._urls(recipient), tracking=False)[2])

    def render(self, recipient: Recipient) -> Rendered:
        """The message for one recipient. Raises `HeaderInjection` for a name or address with
        a line break, `CampaignContentError` if the content fails for this recipient's data."""
        urls = self._urls(recipient)
        subject, body, html, text = self._parts(
            recipient, urls, tracking=recipient.tracking_enabled
        )
        to_address, to_utf8 = _wire_address(wire.clean(recipient.email, "To"))
        if recipient.delivery_id is not None:
            mid = campaign_message_id(
                self.secret_key, self.campaign_id, recipient.delivery_id, self.domain
            )
        else:
            mid = f"c{self.campaign_id}.test.{secrets.token_hex(8)}@{self.domain}"
        unsubscribe = f"<{urls['unsubscribe_url']}>"
        if self.mailto:
            mailto = self.mailto if self.mailto.startswith("mailto:") else f"mailto:{self.mailto}"
            unsubscribe += f", <{mailto}>"
        headers = [
            self.from_header,
            f"To: {wire.mailbox(recipient.name, to_address, 'To')}",
            wire.unstructured("Subject", subject),
            wire.date(),
            wire.header("Message-ID", f"<{mid}>"),
            wire.header("List-Unsubscribe", unsubscribe),
            *self.fixed_headers,
        ]
        utf8 = to_utf8 or self.from_utf8
        head = self.mime.head(headers, utf8=utf8)
        chunks = self.mime.body(self.templates.text.qp.chunks(text), body.qp.chunks(html))
        parts = [head, b"\r\n\r\n", *chunks]
        if self.dkim_key is not None:
            parts.insert(0, dkim.signature(head, chunks, self.dkim_key, self.canon))
        data = b"".join(parts)
        return Rendered(
            subject=subject,
            html="".join(html),
            text="".join(text),
            message_id=mid,
            data=data,
            envelope_from=self.envelope_from,
            envelope_to=to_address,
            smtputf8=utf8,
        )


# --- previews -------------------------------------------------------------------------------


def preview(
    session: Session,
    template: Any,
    recipient_or_sample: Recipient | None = None,
    *,
    subject: str = "",
    preheader: str = "",
    node: str | None = None,
) -> dict[str, str]:
    """Subject, HTML and text of `template` for a recipient (or the sample subscriber).

    Links in a preview go nowhere (`#unsubscribe`, ...): a preview must never carry a real
    subscriber's working unsubscribe link, and nothing is tracked. Raises
    `CampaignContentError` when the content has problems. Commits nothing of the caller's.
    """
    content = build_content(
        session,
        mjml=template.mjml,
        text=template.text,
        subject=subject,
        preheader=preheader,
        name=template.name,
        node=_node(node),
    )
    context = context_for(recipient_or_sample or SAMPLE, PREVIEW_URLS)
    context["campaign"] = Record({"name": template.name})
    rendered_subject = one_line(
        render_text(sandbox.TEXT.from_string(content.subject), context, "subject")
    )
    context["campaign"] = Record({"name": template.name, "subject": rendered_subject})
    return {
        "subject": rendered_subject,
        "html": render_text(sandbox.HTML.from_string(content.html), context, "mjml"),
        "text": render_text(sandbox.TEXT.from_string(content.text), context, "text"),
    }
