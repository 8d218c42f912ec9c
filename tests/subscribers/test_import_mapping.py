"""Column mapping for admin imports: a spreadsheet's own columns fed to the API's importer,
with every problem still reported on the line of the uploaded file."""

from __future__ import annotations

import io

from sqlalchemy import select

from mailer.subscribers import import_mapping, importer
from mailer.subscribers.models import Subscriber
from tests.factories import make_form

PAPER = "Signed at the fair."


def run(session, text: str, mapping: list[str], delimiter: str = ",", **options):
    data = import_mapping.remap(io.BytesIO(text.encode()), mapping, delimiter)
    return importer.run(session, data, importer.ImportOptions(**options))


def test_guess_knows_common_spellings_and_keeps_only_what_it_knows():
    columns = ["E-mail", "First Name", "attr.plan", "Consent at", "IP", "Notes", "email address"]
    assert import_mapping.guess(columns) == [
        "email",
        "name",
        "attr.plan",
        "consent_at",
        "consent_ip",
        "",  # unknown: ignored until someone decides to keep it
        "",  # a second email column is not guessed
    ]


def test_problems_keep_the_line_numbers_of_the_uploaded_file(session):
    make_form(session)
    # Line 2's dropped "notes" cell spans three lines; the bad address is on line 5.
    text = (
        "notes,mail,signed,text\n"
        f'"a note\nover\nthree lines",ann@example.com,2026-01-02,"{PAPER}"\n'
        f'x,not-an-address,2026-01-02,"{PAPER}"\n'
    )
    mapping = ["", "email", "consent_at", "consent_text"]
    report = run(session, text, mapping, topic="news")
    assert report.created_active == 1
    assert [(e.line, e.field) for e in report.errors] == [(5, "email")]


def test_semicolons_and_ignored_columns(session):
    make_form(session)
    text = "Mail;City;Secret\nann@example.com;Oslo;do not keep\nbo@example.com;;\n"
    report = run(session, text, ["email", "attr.city", ""], ";", form_id=None, topic="news")
    # No evidence and no form: both rows are reported, nothing is imported.
    assert report.invalid == 2 and session.scalar(select(Subscriber)) is None

    text = f'Mail;Signed;Text;City;Secret\nann@example.com;2026-01-02;"{PAPER}";Oslo;hush\n'
    mapping = ["email", "consent_at", "consent_text", "attr.city", ""]
    assert run(session, text, mapping, ";", topic="news").created_active == 1
    ann = session.scalar(select(Subscriber))
    assert ann.attributes == {"city": "Oslo"}  # the ignored column left no trace


def test_a_row_longer_than_its_header_is_reported_not_cut(session):
    make_form(session)
    text = f'mail,signed,text\nann@example.com,2026-01-02,"{PAPER}",surplus\n'
    report = run(session, text, ["email", "consent_at", "consent_text"], topic="news")
    assert report.invalid == 1 and report.errors[0].field == "file"


def test_a_mapping_is_checked_column_by_column():
    columns = ["a", "b", "c", "d"]
    assert import_mapping.check(["email", "name", "attr.x", ""], columns) == {}
    errors = import_mapping.check(["name", "name", "attr.", "bogus"], columns)
    assert errors == {
        "column-1": ["column 1 is already mapped to this"],
        "column-2": ["an attribute name must be non-empty text"],
        "column-3": ["choose what this column is, or ignore it"],
        "mapping": ["one column must be the email address"],
    }
    assert import_mapping.check(["email"], columns) == {"mapping": ["map every column of the file"]}
