"""Changes to a campaign's HTML template made once per campaign, never per recipient.

- The preheader goes in as hidden preview text right after `<body>` (at freeze time).
- Every static http(s) link becomes `{{ _click(N) }}` and the open pixel `{{ _open_pixel }}`
  (at prepare time), so per recipient there is only a Jinja render: the sandbox calls our
  `_click`, which signs that recipient's click URL. User content can never name `_click`
  itself: `sandbox.tree_problems` refuses every `_` name.
"""

from __future__ import annotations

import html as htmllib
import re

from jinja2 import Environment

CLICK = "_click"
OPEN_PIXEL = "_open_pixel"

PREHEADER_STYLE = (
    "display:none;font-size:1px;color:#ffffff;line-height:1px;max-height:0px;"
    "max-width:0px;opacity:0;overflow:hidden;mso-hide:all;"
)
PIXEL = (
    f'<img src="{{{{ {OPEN_PIXEL} }}}}" width="1" height="1" alt="" style="display:block;border:0">'
)

_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_ANCHOR = re.compile(r"<(?:a|area)\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""(\shref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_STATIC_WEB_URL = re.compile(r"https?://", re.IGNORECASE)
# Only used to split preheader source into text and tags (same delimiters as the sandbox).
_LEXER = Environment(autoescape=True)


def _escape_text(source: str) -> str:
    """Jinja source whose literal text is HTML-escaped and whose tags are left alone, so the
    preheader can sit inside the HTML template and still render as text."""
    out = []
    for _line, kind, value in _LEXER.lex(source):
        out.append(htmllib.escape(value, quote=False) if kind == "data" else value)
    return "".join(out)


def insert_preheader(html: str, preheader: str) -> str:
    """The HTML with `preheader` (Jinja source, already checked) as hidden preview text."""
    if not preheader.strip():
        return html
    block = f'<div style="{PREHEADER_STYLE}">{_escape_text(preheader)}</div>'
    match = _BODY_OPEN.search(html)
    if match is None:
        return block + html
    return html[: match.end()] + block + html[match.end() :]


def add_pixel(html: str) -> str:
    matches = list(_BODY_CLOSE.finditer(html))
    if not matches:
        return html + PIXEL
    at = matches[-1].start()
    return html[:at] + PIXEL + html[at:]


def rewrite_links(html: str) -> tuple[str, list[str]]:
    """Static http(s) hrefs of `<a>`/`<area>` become `{{ _click(N) }}`; returns the targets.

    Links written with Jinja (`{{ unsubscribe_url }}`, personalised URLs) and mailto: stay
    as they are.
    """
    urls: list[str] = []

    def href(match: re.Match[str]) -> str:
        value = match.group(2) if match.group(2) is not None else match.group(3)
        target = value.strip()
        if "{" in target or not _STATIC_WEB_URL.match(target):
            return match.group(0)
        urls.append(htmllib.unescape(target))
        return f'{match.group(1)}"{{{{ {CLICK}({len(urls) - 1}) }}}}"'

    def tag(match: re.Match[str]) -> str:
        return _HREF.sub(href, match.group(0), count=1)

    return _ANCHOR.sub(tag, html), urls


def instrument(html: str, *, clicks: bool, opens: bool) -> tuple[str, list[str]]:
    urls: list[str] = []
    if clicks:
        html, urls = rewrite_links(html)
    if opens:
        html = add_pixel(html)
    return html, urls
