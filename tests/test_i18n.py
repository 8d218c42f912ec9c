"""Norwegian Bokmål and Danish: complete catalogs, and pages and mail that really speak them.

The compiled catalogs (`.mo`) are not in git; the install script compiles them. So that this
file passes from a clean clone too, a session fixture runs that same command first.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests import signups
from tests.conftest import CSRF
from tests.factories import make_form
from tests.inbox import html_of, link, text_of

ROOT = Path(__file__).resolve().parents[1]
TRANSLATIONS = ROOT / "mailer" / "translations"
PYBABEL = Path(sys.executable).with_name("pybabel")
LANGS = ("nb", "da")
ORIGIN = {"Origin": "https://shop.example"}  # the factory's allowed origin

# What a visitor should read, per language (taken from the catalogs, checked by hand).
SAYS = {
    "nb": {
        "email_label": "E-postadresse",
        "name_label": "Fornavn (valgfritt)",
        "button": "Meld meg på",
        "fine_print": "Du kan melde deg av når som helst med ett klikk.",
        "check_inbox": "Sjekk innboksen din",
        "subject": "Bekreft abonnementet ditt",
        "greeting": "Hei Kari,",
        "confirm_text": "Bekreft ved å åpne denne lenken og trykke på knappen:",
        "confirm_button": "Bekreft abonnementet mitt",
        "withdraw": "Trekk tilbake denne forespørselen",
        "confirm_page": "Ja, meld meg på",
        "welcome": "Velkommen!",
        "gmail": ("fanen Kampanjer", "til Primær", "«Ja»"),
        "consent_error": "Kryss av i boksen for å gi ditt samtykke.",
        "email_error": "Skriv inn en gyldig e-postadresse, for eksempel navn@example.com.",
        "check_form": "Se over skjemaet:",
    },
    "da": {
        "email_label": "E-mailadresse",
        "name_label": "Fornavn (valgfrit)",
        "button": "Tilmeld",
        "fine_print": "Du kan til enhver tid afmelde dig med ét klik.",
        "check_inbox": "Tjek din indbakke",
        "subject": "Bekræft dit abonnement",
        "greeting": "Hej Kari,",
        "confirm_text": "Bekræft ved at åbne dette link og trykke på knappen:",
        "confirm_button": "Bekræft mit abonnement",
        "withdraw": "Træk denne anmodning tilbage",
        "confirm_page": "Ja, tilmeld mig",
        "welcome": "Velkommen!",
        "gmail": ("fanen Kampagner", "i Primær", "»Ja«"),
        "consent_error": "Sæt kryds i feltet for at give dit samtykke.",
        "email_error": "Indtast en gyldig e-mailadresse, f.eks. navn@example.com.",
        "check_form": "Tjek venligst formularen:",
    },
}

# English that must not leak into a translated page or mail.
ENGLISH = (
    "Email address",
    "Subscribe",
    "Please confirm your subscription",
    "Hello",
    "Someone, hopefully you",
    "Withdraw this request",
    "Please tick the box",
    "Promotions",
)

PLACEHOLDER = re.compile(r"%\(\w+\)[sdifr]|%[sdifr]|\{\w*\}")


@pytest.fixture(scope="session")
def compiled_catalogs() -> None:
    """The install script's own command: `.venv/bin/pybabel compile -d mailer/translations`.

    Used by every test that renders; the catalog tests read the `.po` files directly, so that
    a broken catalog is reported message by message rather than as a compile error.
    """
    result = subprocess.run(
        [str(PYBABEL), "compile", "-d", str(TRANSLATIONS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for lang in LANGS:
        assert (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo").is_file()


def _catalog(path: Path, locale: str | None = None):
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def _html_lang(html: str) -> str | None:
    match = re.search(r"<html\b[^>]*\blang=\"([^\"]*)\"", html)
    return match.group(1) if match else None


# --- the catalogs ------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_is_translated_with_the_same_placeholders(lang):
    catalog = _catalog(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", lang)
    template = _catalog(TRANSLATIONS / "messages.pot")
    assert str(catalog.locale) == lang
    assert not catalog.fuzzy, "the catalog header is marked fuzzy"
    assert not catalog.obsolete, f"obsolete entries: {list(catalog.obsolete)}"
    ids = {m.id for m in catalog if m.id}
    assert ids == {m.id for m in template if m.id}, "run `pybabel update` (see babel.cfg)"
    assert len(ids) > 50
    for message in catalog:
        if not message.id:
            continue
        assert isinstance(message.id, str), f"unexpected plural entry: {message.id}"
        assert message.string and message.string.strip(), f"untranslated: {message.id!r}"
        assert not message.fuzzy, f"fuzzy: {message.id!r}"
        assert sorted(PLACEHOLDER.findall(message.string)) == sorted(
            PLACEHOLDER.findall(message.id)
        ), f"placeholders differ in {message.id!r}: {message.string!r}"
    problems = [(m.id, [str(e) for e in errs]) for m, errs in catalog.check()]
    assert problems == []


def test_template_matches_what_the_sources_mark(tmp_path):
    """Every string marked in the code and templates is in the catalogs, and nothing else."""
    fresh = tmp_path / "messages.pot"
    result = subprocess.run(
        [
            str(PYBABEL),
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_l",
            "--ignore-dirs",
            "node_modules instance .* _*",
            "-o",
            str(fresh),
            ".",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    marked = {m.id for m in _catalog(fresh) if m.id}
    known = {m.id for m in _catalog(TRANSLATIONS / "messages.pot") if m.id}
    assert marked == known, (
        f"new: {sorted(marked - known)}; gone: {sorted(known - marked)}. "
        "Re-run pybabel extract and update (commands in babel.cfg), then translate."
    )
    # The developer outbox and the embed snippet stay English: nothing extracted from them.
    with fresh.open() as f:
        pot = f.read()
    assert "templates/web/outbox/" not in pot and "embed_snippet.html" not in pot


# --- the hosted form ---------------------------------------------------------------------


def _assert_form_in(html: str, lang: str) -> None:
    says = SAYS[lang]
    assert _html_lang(html) == lang
    for key in ("email_label", "name_label", "button", "fine_print"):
        assert says[key] in html, f"{key} not in {lang}"
    assert ">Subscribe</button>" not in html and "Email address" not in html


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.usefixtures("compiled_catalogs")
def test_form_with_a_locale_speaks_it_whatever_the_browser_asks(client, session, lang):
    make_form(session, locale=lang)
    page = client.get("/subscribe/news", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert page.status_code == 200
    _assert_form_in(page.get_data(as_text=True), lang)


@pytest.mark.parametrize(
    ("accept", "lang"),
    [
        ("nb-NO,nb;q=0.9,en;q=0.5", "nb"),
        ("da-DK,da;q=0.9,en-US;q=0.8", "da"),
        ("da", "da"),
    ],
)
@pytest.mark.usefixtures("compiled_catalogs")
def test_form_without_a_locale_follows_accept_language(client, session, accept, lang):
    make_form(session, locale=None)
    page = client.get("/subscribe/news", headers={"Accept-Language": accept})
    assert page.status_code == 200
    _assert_form_in(page.get_data(as_text=True), lang)


@pytest.mark.usefixtures("compiled_catalogs")
def test_form_without_a_locale_falls_back_to_english(client, session):
    make_form(session, locale=None)
    html = client.get("/subscribe/news", headers={"Accept-Language": "fr-FR,fr"}).get_data(
        as_text=True
    )
    assert _html_lang(html) == "en"
    assert "Email address" in html and ">Subscribe</button>" in html


# --- the mail, as received over SMTP -----------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.usefixtures("compiled_catalogs")
def test_confirmation_email_is_in_the_forms_language(client, session, work, inbox, lang):
    says = SAYS[lang]
    make_form(session, locale=lang)
    response = client.post(
        "/subscribe/news",
        json={"email": "kari@example.com", "name": "Kari", "consent": True},
        headers={**ORIGIN, "Accept-Language": "en"},
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    signups.drain(client.application)
    work()

    mail = inbox.only("kari@example.com")
    assert mail["Subject"] == says["subject"]
    text = text_of(mail)
    assert text.startswith(says["greeting"])
    assert says["confirm_text"] in text and says["withdraw"] in text
    html = html_of(mail)
    assert _html_lang(html) == lang
    assert says["greeting"] in html and says["confirm_button"] in html
    assert f"<title>{says['subject']}</title>" in html
    for english in ENGLISH:
        assert english not in mail["Subject"] and english not in text, english
        assert english not in html, english

    # The link in the mail opens a page in the same language (the subscriber's locale).
    page = client.get(link(mail, "confirm").removeprefix("http://localhost"))
    assert page.status_code == 200
    assert _html_lang(page.get_data(as_text=True)) == lang
    assert says["confirm_page"] in page.get_data(as_text=True)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.usefixtures("compiled_catalogs")
def test_welcome_email_gmail_tip_names_gmails_own_tabs(client, session, work, inbox, lang):
    says = SAYS[lang]
    make_form(session, locale=lang, welcome=True)
    client.post(
        "/subscribe/news", json={"email": "kari@example.com", "consent": True}, headers=ORIGIN
    )
    signups.drain(client.application)
    work()
    path = link(inbox.only(), "confirm").removeprefix("http://localhost")
    token = CSRF.search(client.get(path).get_data(as_text=True)).group(1)
    confirmed = client.post(path, data={"csrf_token": token})
    assert confirmed.status_code == 200 and _html_lang(confirmed.get_data(as_text=True)) == lang
    inbox.clear()
    work()

    welcome = inbox.only("kari@example.com")
    assert welcome["Subject"] == says["welcome"]
    text, html = text_of(welcome), html_of(welcome)
    for words in says["gmail"]:
        assert words in text and words in html, words
    assert "Promotions" not in text and "Primary" not in text
    assert _html_lang(html) == lang


# --- validation errors -------------------------------------------------------------------


@pytest.mark.usefixtures("compiled_catalogs")
def test_missing_consent_is_reported_in_norwegian_as_json(client, session):
    make_form(session, locale="nb")
    response = client.post("/subscribe/news", json={"email": "kari@example.com"}, headers=ORIGIN)
    assert response.status_code == 400
    assert response.get_json() == {"errors": {"consent": [SAYS["nb"]["consent_error"]]}}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.usefixtures("compiled_catalogs")
def test_form_errors_are_shown_in_the_forms_language(client, session, lang):
    says = SAYS[lang]
    make_form(session, locale=lang)
    page = client.get("/subscribe/news").get_data(as_text=True)
    token = CSRF.search(page).group(1)
    started = re.search(r'name="started" value="([^"]+)"', page).group(1)
    response = client.post(
        "/subscribe/news", data={"csrf_token": token, "started": started, "email": "not-an-email"}
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert _html_lang(html) == lang
    assert says["check_form"] in html
    assert says["email_error"] in html and says["consent_error"] in html
    assert "Please check the form" not in html and "Please tick the box" not in html
