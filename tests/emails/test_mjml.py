"""MJML through the reference renderer: Jinja survives, errors carry line numbers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.emails import mjml
from mailer.emails.models import CompiledTemplate

VALID = """<mjml>
  <mj-body>
    <mj-section><mj-column>
      <mj-text>Hello {{ name }}{% if n < 3 %}, welcome{% endif %}</mj-text>
      <mj-button href="{{ url }}">Go</mj-button>
    </mj-column></mj-section>
  </mj-body>
</mjml>"""

INVALID = """<mjml>
  <mj-body>
    <mj-section><mj-column>
      <mj-buton>Typo</mj-buton>
      <mj-text padding="lots">Bad attribute</mj-text>
    </mj-column></mj-section>
  </mj-body>
</mjml>"""


def test_jinja_tags_survive_compilation():
    compiled = mjml.compile_mjml(VALID)
    assert "{{ name }}" in compiled.html
    assert "{% if n < 3 %}" in compiled.html
    assert 'href="{{ url }}"' in compiled.html
    assert compiled.version.startswith("5.")


def test_errors_name_their_lines():
    with pytest.raises(mjml.MjmlError) as caught:
        mjml.compile_mjml(INVALID)
    lines = {p.line for p in caught.value.problems}
    assert {4, 5} <= lines
    assert "mj-buton" in str(caught.value) and "line 4" in str(caught.value)


def test_missing_node_is_a_clear_message_not_a_traceback():
    with pytest.raises(mjml.MjmlUnavailable) as caught:
        mjml.compile_mjml(VALID, node="node-that-is-not-installed")
    message = str(caught.value)
    assert "Node.js" in message and "apt-get install nodejs" in message and "npm ci" in message


def test_compiled_once_per_version_and_stored(session, monkeypatch):
    mjml._memory.clear()
    first = mjml.compiled_html(session, VALID)
    assert session.scalar(select(CompiledTemplate.html)) == first
    # Stored: later processes need no Node at all for this version.
    mjml._memory.clear()
    monkeypatch.setattr(mjml, "compile_mjml", lambda *a, **k: pytest.fail("compiled twice"))
    assert mjml.compiled_html(session, VALID) == first
