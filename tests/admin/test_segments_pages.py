"""The segment pages through the test client: building rules by posting the builder's form,
the live count and sample, errors at the condition they concern, saving and reopening (any
tree the API accepts reads back and saves unchanged), the list, and deleting."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from mailer.accounts.models import Role
from mailer.campaigns.models import CampaignStatus
from mailer.compliance.models import StaffAccess
from mailer.database import utcnow
from mailer.segments import compiler, service
from mailer.segments.models import Segment
from mailer.segments.rules import validate_tree
from tests.admin.conftest import csrf_of
from tests.segments.conftest import World
from tests.segments.test_property import trees

NEW = "/admin/segments/new"
BUILDER = "/admin/segments/builder"
PREVIEW = "/admin/segments/preview"


class FormFields(HTMLParser):
    """What a browser would post from the segment form: inputs, ticked boxes, the chosen
    option of each select (the first when none is marked), textareas."""

    def __init__(self, fragment: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: list[tuple[str, str]] = []
        self._inside = fragment
        self._select: tuple[str, list[tuple[str, bool]]] | None = None
        self._option: list[str] | None = None
        self._option_selected = False
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and "seg-form" in a.get("class", ""):
            self._inside = True
        if not self._inside:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select = (a.get("name", ""), [])
        elif tag == "option" and self._select is not None:
            self._option = [a.get("value", "")]
            self._option_selected = "selected" in a
            self._select[1].append((a.get("value", ""), "selected" in a))
        elif tag == "textarea":
            self._textarea = (a.get("name", ""), [])

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False
        elif tag == "select" and self._select is not None:
            name, options = self._select
            chosen = [v for v, selected in options if selected] or [options[0][0]]
            self.fields.append((name, chosen[-1]))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            text = "".join(self._textarea[1])
            self.fields.append((self._textarea[0], text.removeprefix("\n")))
            self._textarea = None


def form_of(html: str, token: str | None = None) -> MultiDict:
    """The fields of the page's segment form, or of a builder fragment (with `token`)."""
    parser = FormFields(fragment=token is not None)
    parser.feed(html)
    fields = MultiDict(parser.fields)
    if token is not None:
        fields["csrf_token"] = token
    return fields


def count_in(html: str) -> int | None:
    found = re.search(r'data-count="(\d+)"', html)
    return int(found.group(1)) if found else None


def make_people(session) -> World:
    """Five people: example.org and shop.test addresses, plans, opens, topics."""
    world = World(session)
    people = [
        ("ann@example.org", {"plan": "pro"}, 5, {"news": "active"}),
        ("bob@example.org", {"plan": "free"}, 0, {"news": "unsubscribed"}),
        ("cid@shop.test", {"plan": "pro"}, 1, {}),
        ("dot@example.org", {"plan": "free", "seats": 12}, 4, {"deals": "active"}),
        ("eve@shop.test", {}, 3, {}),
    ]
    for email, attributes, opens, topics in people:
        world.subscriber(email, attributes=attributes, open_count=opens, subscriptions=topics)
    return world


@pytest.fixture
def world(session) -> World:
    return make_people(session)


@pytest.fixture
def marketer(staff_client):
    return staff_client(Role.MARKETER)


def nested_rules(token: str, **extra: str) -> dict[str, str]:
    """Example.org addresses that are on the pro plan or opened at least 3 times."""
    return {
        "csrf_token": token,
        "r-node": "group",
        "r-mode": "all",
        "r.0-node": "cond",
        "r.0-field": "email_domain",
        "r.0-op": "eq",
        "r.0-value": "example.org",
        "r.0-was": "email_domain|string|eq",
        "r.1-node": "group",
        "r.1-mode": "any",
        "r.1.0-node": "cond",
        "r.1.0-field": "attribute:plan",
        "r.1.0-type": "string",
        "r.1.0-op": "eq",
        "r.1.0-value": "pro",
        "r.1.0-was": "attribute:plan|string|eq",
        "r.1.1-node": "cond",
        "r.1.1-field": "open_count",
        "r.1.1-op": "gte",
        "r.1.1-value": "3",
        "r.1.1-was": "open_count|string|gte",
        **extra,
    }


NESTED_TREE = {
    "all": [
        {"field": "email_domain", "op": "eq", "value": "example.org"},
        {
            "any": [
                {"field": "attribute", "key": "plan", "type": "string", "op": "eq", "value": "pro"},
                {"field": "open_count", "op": "gte", "value": 3},
            ]
        },
    ]
}


def test_a_new_segment_starts_with_everyone_and_grows_by_buttons(world, marketer):
    page = marketer.get(NEW)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert count_in(html) == 5
    assert "No conditions yet: everyone matches" in html
    token = csrf_of(marketer, NEW)

    fields = form_of(html)
    fields["action"] = "add-cond:r"
    drawn = marketer.post(BUILDER, data=fields).get_data(as_text=True)
    assert 'name="r.0-field"' in drawn and "Choose what to compare" in drawn
    assert "Choose what to compare." in drawn  # the empty condition says what it needs
    assert 'id="preview"' in drawn and 'hx-swap-oob="true"' in drawn

    # Picking a field gives its first op and the input that op takes.
    fields = form_of(drawn, token)
    fields["r.0-field"] = "open_count"
    drawn = marketer.post(BUILDER, data=fields).get_data(as_text=True)
    fields = form_of(drawn, token)
    assert fields["r.0-op"] == "gte"
    assert 'name="r.0-value"' in drawn and 'inputmode="numeric"' in drawn

    fields["r.0-value"] = "4"
    preview = marketer.post(PREVIEW, data=fields).get_data(as_text=True)
    assert count_in(preview) == 2  # ann (5), dot (4)

    fields["action"] = "add-group:r"
    drawn = marketer.post(BUILDER, data=fields).get_data(as_text=True)
    assert 'name="r.1-mode"' in drawn and 'name="r.1.0-field"' in drawn
    fields = form_of(drawn, token)
    fields["action"] = "remove:r.1"
    drawn = marketer.post(BUILDER, data=fields).get_data(as_text=True)
    assert 'name="r.1-node"' not in drawn
    assert count_in(drawn) == 2  # the preview rides along


def test_without_javascript_the_buttons_redraw_the_whole_page(world, marketer):
    token = csrf_of(marketer, NEW)
    data = {"csrf_token": token, "name": "Draft", "r-node": "group", "action": "add-group:r"}
    response = marketer.post(NEW, data=data)
    assert response.status_code == 200
    fields = form_of(response.get_data(as_text=True))
    assert fields["name"] == "Draft" and fields["r.0-mode"] == "any"
    assert "r.0.0-field" in fields


def test_the_live_count_and_sample_follow_nested_rules(world, marketer, session):
    token = csrf_of(marketer, NEW)
    html = marketer.post(PREVIEW, data=nested_rules(token)).get_data(as_text=True)
    assert count_in(html) == 2
    assert "ann@example.org" in html and "dot@example.org" in html
    assert "bob@example.org" not in html
    # Showing members' addresses is on the staff audit log.
    logged = session.scalar(
        select(func.count()).select_from(StaffAccess).where(StaffAccess.action == "segments.sample")
    )
    assert logged >= 1

    none_of = nested_rules(token, **{"r.1-mode": "none"})
    assert count_in(marketer.post(PREVIEW, data=none_of).get_data(as_text=True)) == 1  # bob


def test_saving_and_reopening_keeps_the_rules(world, marketer, session):
    token = csrf_of(marketer, NEW)
    response = marketer.post(NEW, data=nested_rules(token, name="Engaged at example.org"))
    assert response.status_code == 302
    segment = session.scalars(select(Segment)).one()
    assert segment.rules == validate_tree(NESTED_TREE)

    page = marketer.get(f"/admin/segments/{segment.id}").get_data(as_text=True)
    assert count_in(page) == 2
    fields = form_of(page)
    assert fields["r.1.0-field"] == "attribute:plan" and fields["r.1.0-value"] == "pro"
    assert fields["r.1.1-op"] == "gte" and fields["r.1.1-value"] == "3"
    # Saved again as it was read: nothing changes.
    fields["name"] = "Engaged (renamed)"
    response = marketer.post(f"/admin/segments/{segment.id}", data=fields)
    assert response.status_code == 302
    session.expire_all()
    assert segment.rules == validate_tree(NESTED_TREE) and segment.name == "Engaged (renamed)"


def test_an_invalid_value_is_shown_at_its_condition_and_nothing_is_lost(world, marketer, session):
    token = csrf_of(marketer, NEW)
    bad = nested_rules(token, **{"r.1.1-value": "lots"})
    preview = marketer.post(PREVIEW, data=bad).get_data(as_text=True)
    assert count_in(preview) is None and "Fix the marked conditions" in preview
    slot = re.search(r'id="errors-r-1-1" hx-swap-oob="true">(.*?)</div>', preview, re.S)
    assert slot and 'data-input="value">Not a valid integer.' in slot.group(1)
    assert re.search(r'id="errors-r-0" hx-swap-oob="true"></div>', preview)  # others cleared

    response = marketer.post(NEW, data={**bad, "name": "Broken"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    kept = form_of(html)
    assert kept["name"] == "Broken" and kept["r.1.1-value"] == "lots"
    assert kept["r.0-value"] == "example.org"
    assert re.search(
        r'id="errors-r-1-1">\s*<p class="field-error" data-input="value">'
        r"Not a valid integer.",
        html,
    )
    assert session.scalar(select(func.count()).select_from(Segment)) == 0

    days = {
        "csrf_token": token,
        "r-node": "group",
        "r-mode": "all",
        "r.0-node": "cond",
        "r.0-field": "created_at",
        "r.0-op": "within_last_days",
        "r.0-value": "0",
    }
    preview = marketer.post(PREVIEW, data=days).get_data(as_text=True)
    assert "greater than or equal to 1" in preview


def test_a_value_list_error_names_the_line(world, marketer):
    token = csrf_of(marketer, NEW)
    data = {
        "csrf_token": token,
        "r-node": "group",
        "r.0-node": "cond",
        "r.0-field": "attribute:seats",
        "r.0-type": "number",
        "r.0-op": "in",
        "r.0-value": "12\ntwelve\n 3,5 ",
    }
    html = marketer.post(PREVIEW, data=data).get_data(as_text=True)
    assert "Line 2: Not a valid number." in html
    data["r.0-value"] = "12\n3,5"  # a decimal comma is read as a decimal point
    assert count_in(marketer.post(PREVIEW, data=data).get_data(as_text=True)) == 1


def test_references_to_what_does_not_exist_are_named(world, marketer):
    token = csrf_of(marketer, NEW)
    data = {
        "csrf_token": token,
        "r-node": "group",
        "r.0-node": "cond",
        "r.0-field": "topic",
        "r.0-topic": "#999",
        "r.0-op": "eq",
        "r.0-value": "active",
    }
    html = marketer.post(PREVIEW, data=data).get_data(as_text=True)
    assert "No topic with id 999." in html
    data["r.0-topic"] = "news"
    assert count_in(marketer.post(PREVIEW, data=data).get_data(as_text=True)) == 1


def test_the_builder_offers_what_exists(world, marketer):
    token = csrf_of(marketer, NEW)
    data = {"csrf_token": token, "r-node": "group", "r.0-node": "cond", "action": "refresh"}
    for field in ("topic", "campaign", "attribute:seats"):
        data["r.0-field"] = field
        drawn = marketer.post(BUILDER, data=data).get_data(as_text=True)
        if field == "topic":
            assert 'value="news"' in drawn and 'value="deals"' in drawn
        elif field == "campaign":
            assert f'value="{world.campaigns[0].id}"' in drawn and "Issue 1" in drawn
        else:  # the attribute's type comes from what profiles hold
            assert re.search(r'<option value="number" selected>as number</option>', drawn)
    assert 'value="attribute:plan"' in drawn and "plan (text)" in drawn
    assert 'value="attribute:seats"' in drawn and "seats (number)" in drawn
    assert "Other attribute" in drawn


def test_a_taken_name_is_refused_at_the_name(world, marketer, session):
    service.create(session, "Pro", {"all": []})
    token = csrf_of(marketer, NEW)
    response = marketer.post(NEW, data=nested_rules(token, name="Pro"))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="name-error">A segment with this name exists.' in html
    empty = marketer.post(NEW, data={"csrf_token": token})
    assert empty.status_code == 422
    assert "Give the segment a name." in empty.get_data(as_text=True)


def test_the_list_describes_each_segment_and_counts_on_demand(world, marketer, session):
    segment = service.create(session, "Engaged", NESTED_TREE)
    service.create(session, "Everyone", {"all": []})
    html = marketer.get("/admin/segments/").get_data(as_text=True)
    assert "Email domain is example.org and (plan is pro or number of opens is at least 3)" in html
    searched = marketer.get("/admin/segments/?q=ENGA").get_data(as_text=True)
    assert "Engaged" in searched and "Everyone" not in searched
    counted = marketer.get(f"/admin/segments/{segment.id}/count").get_data(as_text=True)
    assert count_in(counted) == 2


def test_deleting_asks_nothing_of_unused_segments_and_refuses_used_ones(world, marketer, session):
    token = csrf_of(marketer, NEW)
    unused = service.create(session, "Unused", {"all": []}).id
    response = marketer.post(f"/admin/segments/{unused}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    session.expire_all()
    assert session.scalar(select(func.count()).where(Segment.id == unused)) == 0

    used = service.create(session, "Used", NESTED_TREE)
    sent, draft = world.campaigns[0], world.campaigns[1]
    sent.segment_id = draft.segment_id = used.id
    sent.status = CampaignStatus.SENT
    session.commit()
    response = marketer.post(f"/admin/segments/{used.id}/delete", data={"csrf_token": token})
    assert response.headers["Location"] == f"/admin/segments/{used.id}"
    page = marketer.get(f"/admin/segments/{used.id}").get_data(as_text=True)
    assert "This segment cannot be deleted" in page
    assert "Issue 1 (sent)" in page and "Issue 2 (draft)" in page
    session.expire_all()
    assert session.get(Segment, used.id) is not None


def test_unknown_segments_are_404(world, marketer):
    token = csrf_of(marketer, NEW)
    assert marketer.get("/admin/segments/999999").status_code == 404
    assert marketer.post("/admin/segments/999999", data={"csrf_token": token}).status_code == 404
    assert marketer.get("/admin/segments/999999/count").status_code == 404


def _plain(value: Any) -> bool:
    """Values the builder shows as typed: no surrounding spaces, no line breaks (it trims what
    people type; see mailer/segments/builder_form.py)."""
    if isinstance(value, list):
        return all(_plain(v) and v != "" for v in value)
    if isinstance(value, str):
        return value == value.strip() and (value == "" or value.splitlines() == [value])
    return True


def _all_plain(tree: dict[str, Any]) -> bool:
    for key in ("all", "any"):
        if key in tree:
            return all(_all_plain(child) for child in tree[key])
    if "not" in tree:
        return _all_plain(tree["not"])
    return _plain(tree.get("value")) and _plain(tree.get("topic", ""))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_tree_the_api_accepts_reads_back_and_saves_unchanged(world, marketer, session, data):
    """Ids of topics and forms that exist come back as their slugs (the same rows), a bare
    condition comes back inside "all", double negations cancel, ticked choices come back in
    the menu's order: the same members, and the same tree but for those."""
    tree = data.draw(trees(world))
    assume(_all_plain(tree))
    normal = validate_tree(tree)
    segment = Segment(name="Round trip", rules=normal)
    session.add(segment)
    session.commit()
    try:
        page = marketer.get(f"/admin/segments/{segment.id}").get_data(as_text=True)
        response = marketer.post(f"/admin/segments/{segment.id}", data=form_of(page))
        session.expire_all()
        if response.status_code == 422:  # only for references to what does not exist
            assert service.check_references(session, normal), response.get_data(as_text=True)
            return
        assert response.status_code == 302
        saved = session.get(Segment, segment.id).rules
        assert _shape(saved) == _shape(_canonical(normal, world))
        now = utcnow()
        before = set(session.scalars(compiler.member_ids(normal, now)))
        assert set(session.scalars(compiler.member_ids(saved, now))) == before
    finally:
        session.delete(session.get(Segment, segment.id))
        session.commit()


def _canonical(node: dict[str, Any], world: World, top: bool = True) -> dict[str, Any]:
    """What the builder writes for `node`."""
    topics = {t.id: t.slug for t in world.topics}
    forms = {f.id: f.slug for f in world.forms}
    result: dict[str, Any]
    for key in ("all", "any"):
        if key in node:
            return {key: [_canonical(c, world, False) for c in node[key]]}
    if "not" in node:
        inner = _canonical(node["not"], world, False)
        result = inner["not"] if set(inner) == {"not"} else {"not": inner}
    else:
        result = dict(node)
        if isinstance(result.get("topic"), int):
            result["topic"] = topics.get(result["topic"], result["topic"])
        if result.get("field") == "form" and "value" in result:
            value = result["value"]
            result["value"] = (
                [forms.get(v, v) for v in value]
                if isinstance(value, list)
                else forms.get(value, value)
            )
    inner_keys = set(result.get("not", {})) if isinstance(result.get("not"), dict) else set()
    if top and not ({"all", "any"} & (set(result) | inner_keys)):
        return {"all": [result]}
    return result


TICKED = ("status", "topic", "form")


def _shape(tree: Any) -> Any:
    """Numbers by value (5 and 5.0 are the same rule); ticked choices as a set."""
    if isinstance(tree, dict):
        shaped = {k: _shape(v) for k, v in tree.items()}
        if tree.get("field") in TICKED and tree.get("op") == "in":
            shaped["value"] = sorted(set(map(str, tree["value"])))
        return shaped
    if isinstance(tree, list):
        return [_shape(v) for v in tree]
    if isinstance(tree, float) and tree == int(tree) and abs(tree) < 2**53:
        return int(tree)
    return tree
