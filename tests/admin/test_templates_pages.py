"""The template pages as a marketer uses them: the list, saving in the editor (refused with the
problem's line when the content is wrong, keeping what was typed), the live preview served
from its own URL under its own CSP, and a test send that stores nothing."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import func, select

from mailer.accounts.models import Role
from mailer.campaigns.models import Campaign, Template
from mailer.compliance.models import StaffAccess
from mailer.subscribers.models import Subscriber, Topic
from tests.admin.conftest import csrf_of

MJML = """<mjml>
  <mj-body>
    <mj-section><mj-column>
      <mj-text>Hello {{ subscriber.first_name | default("there") }} from {{ attributes.city
      }}</mj-text>
      <mj-button href="https://shop.example/sale">To the sale</mj-button>
      <mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
    </mj-column></mj-section>
  </mj-body>
</mjml>"""
FRAME = re.compile(r'<iframe id="frame-desktop"[^>]* src="([^"]+)"')
SLOT = re.compile(r'name="slot" value="([^"]+)"')


@pytest.fixture
def marketer(staff_client):
    return staff_client(Role.MARKETER)


def _count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def _save(client, path: str, **fields: str):
    data = {"csrf_token": csrf_of(client, "/admin/templates/new"), "name": "Weekly", "mjml": MJML}
    return client.post(path, data={**data, **fields})


def test_a_new_template_starts_from_a_working_layout_and_saves(marketer, session):
    page = marketer.get("/admin/templates/new").get_data(as_text=True)
    starter = unescape(re.search(r'<textarea id="mjml"[^>]*>(.*?)</textarea>', page, re.S)[1])
    assert "{{ unsubscribe_url }}" in starter
    response = _save(marketer, "/admin/templates/new", name="Starter", mjml=starter)
    assert response.status_code == 302
    template = session.scalars(select(Template)).one()
    assert response.headers["Location"] == f"/admin/templates/{template.id}"
    assert template.name == "Starter" and template.mjml == starter.replace("\r\n", "\n")
    edit = marketer.get(response.headers["Location"]).get_data(as_text=True)
    assert "Template “Starter” saved." in edit


def test_the_list_shows_when_each_changed_and_how_many_campaigns_use_it(marketer, session):
    topic = Topic(slug="news", name="News")
    used, unused = Template(name="Used one", mjml=MJML), Template(name="Lonely", mjml="<mjml/>")
    session.add_all([topic, used, unused])
    session.flush()
    for n in range(2):
        session.add(
            Campaign(
                name=f"C{n}",
                subject="S",
                from_name="Shop",
                from_email="shop@example.org",
                template_id=used.id,
                topic_id=topic.id,
            )
        )
    session.commit()
    page = marketer.get("/admin/templates/").get_data(as_text=True)
    rows = re.findall(
        r"<tr>\s*<td><a[^>]*>([^<]+)</a></td>\s*<td>([^<]+)</td>\s*"
        r'<td class="num">([^<]+)</td>',
        page,
    )
    assert {name: count for name, _when, count in rows} == {
        "Used one": "2 campaigns",
        "Lonely": "0 campaigns",
    }
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", when) for _n, when, _c in rows)
    assert "no unsubscribe link" in page  # "Lonely" cannot go to campaigns
    filtered = marketer.get("/admin/templates/?q=lone").get_data(as_text=True)
    assert "Lonely" in filtered and "Used one" not in filtered


def test_the_list_is_paged(marketer, session):
    session.add_all(Template(name=f"T{n:02}", mjml=MJML) for n in range(30))
    session.commit()
    first = marketer.get("/admin/templates/").get_data(as_text=True)
    second = marketer.get("/admin/templates/?page=2").get_data(as_text=True)
    assert "Page 1 of 2 (30)" in first and 'rel="next"' in first
    assert len(re.findall(r"/admin/templates/\d+\"", first)) == 25
    assert len(re.findall(r"/admin/templates/\d+\"", second)) == 5


@pytest.mark.parametrize(
    ("bad", "line", "words"),
    [
        (MJML.replace("To the sale", "{{ self.__init__.__globals__ }}"), 6, "cannot be used"),
        (MJML.replace("{{ attributes.city", "{{ subscirber.city"), 4, "subscirber"),
        (
            MJML.replace("<mj-button", "<mj-buton").replace("</mj-button>", "</mj-buton>"),
            6,
            "mj-buton",
        ),
    ],
    ids=["ssti", "unknown-variable", "mjml"],
)
def test_a_save_with_errors_is_refused_with_the_line_and_keeps_the_source(
    marketer, session, bad, line, words
):
    response = _save(marketer, "/admin/templates/new", mjml=bad)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    problem = re.search(rf'<li data-field="mjml" data-line="{line}">(.*?)</li>', page, re.S)
    assert problem, page[page.find('id="problems"') :][:1500]
    assert f"Line {line}" in problem[1] and words in unescape(problem[1])
    kept = re.search(r'<textarea id="mjml"[^>]*>(.*?)</textarea>', page, re.S)[1]
    assert unescape(kept) == bad
    assert _count(session, Template) == 0


def test_a_refused_update_leaves_the_stored_template_as_it_was(marketer, session):
    template = Template(name="Ok", mjml=MJML)
    session.add(template)
    session.commit()
    evil = MJML.replace("To the sale", "{{ cycler.__init__ }}")
    response = _save(marketer, f"/admin/templates/{template.id}", name="Changed", mjml=evil)
    assert response.status_code == 422
    assert 'value="Changed"' in response.get_data(as_text=True)
    session.expire_all()
    assert (session.get(Template, template.id).name, session.get(Template, template.id).mjml) == (
        "Ok",
        MJML,
    )


def test_missing_fields_are_named(marketer):
    response = marketer.post(
        "/admin/templates/new", data={"csrf_token": csrf_of(marketer, "/admin/templates/new")}
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Give the template a name." in page and "Write the template&#39;s MJML." in page
    nul = _save(marketer, "/admin/templates/new", mjml=MJML.replace("Hello", "Hel\x00lo"))
    assert nul.status_code == 422
    assert "Must not contain control characters." in nul.get_data(as_text=True)


def test_a_template_without_unsubscribe_link_saves_with_a_warning(marketer, session):
    draft = MJML.replace('<a href="{{ unsubscribe_url }}">Unsubscribe</a>', "Bye")
    response = _save(marketer, "/admin/templates/new", mjml=draft)
    assert response.status_code == 302
    page = marketer.get(response.headers["Location"]).get_data(as_text=True)
    assert "campaigns cannot use it until it has one" in page


def _preview(client, slot: str, **fields: str):
    token = csrf_of(client, "/admin/templates/new")
    data = {"csrf_token": token, "slot": slot, "name": "Draft", "mjml": MJML, **fields}
    return client.post("/admin/templates/preview", data=data, headers={"HX-Request": "true"})


def test_the_preview_renders_unsaved_source_in_its_own_framed_page(marketer, staff_client):
    slot = SLOT.search(marketer.get("/admin/templates/new").get_data(as_text=True))[1]
    response = _preview(marketer, slot)
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert "No problems found." in fragment
    # The email is never inside our page: two frames load it from its own URL.
    assert "Hello Sam" not in fragment
    assert 'id="frame-phone" hx-swap-oob="true"' in fragment
    url = unescape(FRAME.search(fragment)[1])
    framed = marketer.get(url)
    assert framed.status_code == 200
    assert "Hello Sam from Oslo" in framed.get_data(as_text=True)
    assert 'href="#unsubscribe"' in framed.get_data(as_text=True)
    csp = framed.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in csp and "sandbox" in csp and "script-src" not in csp
    assert framed.headers["X-Frame-Options"] == "SAMEORIGIN"

    # Typing changes it; another staff member cannot read it.
    changed = _preview(marketer, slot, mjml=MJML.replace("Hello", "Goodbye"))
    url2 = unescape(FRAME.search(changed.get_data(as_text=True))[1])
    assert url2 != url and "Goodbye Sam" in marketer.get(url2).get_data(as_text=True)
    assert staff_client(Role.MARKETER).get(url2).status_code == 404


def test_preview_problems_carry_their_lines_and_keep_the_last_good_preview(marketer):
    slot = SLOT.search(marketer.get("/admin/templates/new").get_data(as_text=True))[1]
    bad = MJML.replace("{{ attributes.city", "{{ subscirber.city")
    fragment = _preview(marketer, slot, mjml=bad).get_data(as_text=True)
    assert '<li data-field="mjml" data-line="4">' in fragment
    assert "unknown variable &#39;subscirber&#39; at line 4" in fragment
    assert "<iframe" not in fragment  # the frames keep what they showed


def test_preview_as_a_subscriber_is_logged_once_per_editor(marketer, session):
    session.add(
        Subscriber(email="ann@example.org", name="Ann Lee", attributes={"city": "<b>Bergen</b>"})
    )
    session.commit()
    slot = SLOT.search(marketer.get("/admin/templates/new").get_data(as_text=True))[1]
    for text in ("Hello", "Hi"):
        fragment = _preview(
            marketer, slot, preview_as="Ann@Example.org", mjml=MJML.replace("Hello", text)
        ).get_data(as_text=True)
    framed = marketer.get(unescape(FRAME.search(fragment)[1])).get_data(as_text=True)
    assert "Hi Ann from &lt;b&gt;Bergen&lt;/b&gt;" in framed
    accesses = session.scalars(select(StaffAccess)).all()
    assert [(a.action, a.subject_masked) for a in accesses] == [
        ("template.preview", "a***@example.org")
    ]
    unknown = _preview(marketer, slot, preview_as="nobody@example.org").get_data(as_text=True)
    assert "No subscriber with the address nobody@example.org." in unknown


def test_a_test_send_from_the_editor_is_marked_and_stores_nothing(marketer, session, inbox):
    template = Template(name="Weekly", mjml=MJML)
    session.add(template)
    session.commit()
    token = csrf_of(marketer, f"/admin/templates/{template.id}")
    response = marketer.post(
        f"/admin/templates/{template.id}/test",
        data={
            "csrf_token": token,
            "addresses": "ann@example.org, bob@example.org",
            "subject": "Sale for {{ subscriber.first_name | default('you') }}",
        },
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.get_data(as_text=True).count("Test to ") == 2
    message = inbox.only("ann@example.org")
    assert message["Subject"] == "[Test] Sale for you"
    assert message["X-Mailer-Test"] == "1"
    assert len(inbox.messages("bob@example.org")) == 1
    assert _count(session, Campaign) == 0 and _count(session, Topic) == 0

    refused = marketer.post(
        f"/admin/templates/{template.id}/test",
        data={"csrf_token": token, "addresses": "not-an-address"},
        headers={"HX-Request": "true"},
    )
    assert "&#39;not-an-address&#39; is not a valid email address." in refused.get_data(
        as_text=True
    )


def test_compliance_staff_cannot_open_the_editor(staff_client):
    assert staff_client(Role.COMPLIANCE).get("/admin/templates/").status_code == 403
