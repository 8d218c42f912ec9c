"""System emails: `templates/email/<name>/{subject.txt, body.txt, body.mjml}`.

The MJML is compiled once per version (see `mjml.compiled_html`); the compiled HTML, the
subject and the text part are then rendered with Jinja in the recipient's locale.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale
from jinja2 import Environment, Template
from sqlalchemy.orm import Session

from mailer.config import ROOT
from mailer.emails.mjml import compiled_html

EMAIL_DIR = ROOT / "templates" / "email"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@functools.lru_cache(maxsize=64)
def _html_template(env: Environment, html: str) -> Template:
    # Autoescaped: Flask's environment escapes templates without a file name.
    return env.from_string(html)


def render(session: Session, name: str, locale: str, context: dict[str, Any]) -> Rendered:
    source = (EMAIL_DIR / name / "body.mjml").read_text(encoding="utf-8")
    node = current_app.config["MAILER"].node_binary
    html_template = _html_template(current_app.jinja_env, compiled_html(session, source, node))
    context = {**context, "lang": locale}
    with force_locale(locale):
        subject = render_template(f"email/{name}/subject.txt", **context)
        text = render_template(f"email/{name}/body.txt", **context)
        html = html_template.render(**context)
    return Rendered(subject=" ".join(subject.split()), text=text.strip() + "\n", html=html)
