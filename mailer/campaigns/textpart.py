"""The plain-text alternative, made once per campaign from the compiled HTML.

The HTML still holds its Jinja (`{{ subscriber.first_name }}`, `href="{{ unsubscribe_url }}"`),
and the text made here is itself a Jinja template rendered per recipient. html2text would
mangle Jinja (wrap it, escape it, percent-encode it inside links), so every Jinja tag is
swapped for an opaque marker before conversion and put back afterwards. Text that only
*looks* like Jinja after conversion (an `&#123;&#123;` entity in the HTML) is escaped so it
stays text.
"""

from __future__ import annotations

import re
import secrets

import html2text

WIDTH = 78

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
# Hidden preview text (mj-preview, our preheader) is for the inbox list, not the body.
_HIDDEN = re.compile(
    r"<div[^>]*style=\"[^\"]*display:\s*none[^\"]*\"[^>]*>.*?</div>", re.DOTALL | re.IGNORECASE
)
# [text](url) -> "text (url)"; one level of brackets inside the text.
_LINK = re.compile(r"\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^()\s]*)\)")
_OPENER = re.compile(r"\{(?=[{%#])")


def _converter() -> html2text.HTML2Text:
    h = html2text.HTML2Text()
    h.body_width = WIDTH
    h.ignore_images = False
    h.images_to_alt = True  # a linked image keeps its alt text as the link text
    h.default_image_alt = ""
    h.ignore_tables = True  # MJML's tables are layout, not data
    h.ignore_emphasis = True
    h.use_automatic_links = False
    h.wrap_links = False
    h.unicode_snob = True
    h.single_line_break = False
    return h


def _link(match: re.Match[str]) -> str:
    text, url = " ".join(match.group(1).split()), match.group(2)
    if not text or text == url:
        return url
    return f"{text} ({url})"


def _unmarkdown(text: str) -> str:
    text = _LINK.sub(_link, text)
    text = re.sub(r"^(\s*\d+)\\\.", r"\1.", text, flags=re.MULTILINE)
    text = re.sub(r"^(\s*)\\([-+*])", r"\1\2", text, flags=re.MULTILINE)
    text = re.sub(r"[ \t]+$", "", text, flags=re.MULTILINE)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


def from_html(html: str) -> str:
    """A readable text template from an HTML template; Jinja tags come through unchanged."""
    nonce = secrets.token_hex(4)
    while nonce in html:
        nonce = secrets.token_hex(4)
    saved: list[str] = []

    def protect(match: re.Match[str]) -> str:
        saved.append(match.group(0))
        return f"J{nonce}x{len(saved) - 1}xJ"

    protected = _JINJA.sub(protect, _HIDDEN.sub("", html))
    text = _unmarkdown(_converter().handle(protected))
    # Anything that reads as Jinja now came from entities in the HTML: keep it text.
    text = _OPENER.sub('{{ "{" }}', text)
    return re.sub(rf"J{nonce}x(\d+)xJ", lambda m: saved[int(m.group(1))], text)
