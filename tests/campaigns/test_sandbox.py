"""Template injection is refused when content is saved, naming the field and the line; content
that would exhaust memory or time is refused the same way, and at send time fails only the
recipient whose data drives it past a limit."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.campaigns import budget, sandbox, templates
from mailer.campaigns.content import CampaignContentError, build_content
from mailer.campaigns.models import Delivery, DeliveryStatus, Template
from mailer.campaigns.sandbox import ContentError
from mailer.subscribers.models import Subscriber
from tests.campaigns.conftest import MJML as CAMPAIGN_MJML
from tests.campaigns.conftest import make_audience, make_campaign
from tests.campaigns.test_rendering import _campaign, _prepared, _recipient, _subscriber

MJML = """<mjml>
  <mj-body>
    <mj-section><mj-column>
      <mj-text>{payload}</mj-text>
      <mj-text><a href="{{{{ unsubscribe_url }}}}">Unsubscribe</a></mj-text>
    </mj-column></mj-section>
  </mj-body>
</mjml>"""
VALID = MJML.format(payload="Hello {{ subscriber.first_name | default('there') }}")

# Classic server-side template injection payloads, and ways around a naive filter.
PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ range(99999999) | list }}",
    "{{ subscriber | attr('__class__') }}",
    "{{ subscriber['__class__'] }}",
    "{{ (subscriber | attr('\\x5f\\x5fclass\\x5f\\x5f')) }}",
    "{{ subscriber.name.__class__.mro() }}",
    "{{ subscriber.name.mro }}",
    "{{ subscriber.name.format(subscriber) }}",
    "{{ config.items() }}",
    "{{ request.application }}",
    "{{ attributes._secret }}",
    "{{ _click(0) }}",
    "{{ 9 ** 9 ** 9 }}",
    "{% autoescape false %}{{ attributes.bio }}{% endautoescape %}",
    "{% include '/etc/passwd' %}",
    "{% import 'x' as y %}",
    "{% extends 'base.html' %}",
    "{% macro m() %}{% endmacro %}",
    "{{ attributes.bio | safe }}",
    "{{ subscriber.name | map(attribute='__class__') | list }}",
    "{{ attributes.tags | join(', ', attribute='__class__') }}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_in_a_template_is_refused_at_save_with_its_line(session, payload):
    with pytest.raises(ContentError) as caught:
        templates.create(session, name="Evil", mjml=MJML.format(payload=payload))
    problems = caught.value.errors["mjml"]
    assert problems and all("at line 4" in p for p in problems), problems
    assert session.scalar(select(func.count()).select_from(Template)) == 0


@pytest.mark.parametrize("payload", [*PAYLOADS[:8], "{{ subscriber.email.upper() }}"])
def test_injection_in_the_subject_or_preheader_is_refused(session, payload):
    for field in ("subject", "preheader"):
        with pytest.raises(ContentError) as caught:
            build_content(session, mjml=VALID, text=None, **{field: payload})
        assert caught.value.field == field
        assert all("at line 1" in p for p in caught.value.errors[field])


def test_injection_in_an_authored_text_part_is_refused(session):
    with pytest.raises(ContentError) as caught:
        templates.create(
            session, name="T", mjml=VALID, text="Hi\n\n{{ self.__init__.__globals__ }}\n"
        )
    assert list(caught.value.errors) == ["text"]
    assert any("at line 3" in p for p in caught.value.errors["text"])


def test_unknown_variable_is_named_with_its_line(session):
    mjml = "<mjml>\n<mj-body>\n<mj-section><mj-column><mj-text>\n{{ subscirber.name }}\n"
    mjml += "</mj-text></mj-column></mj-section></mj-body></mjml>"
    with pytest.raises(ContentError) as caught:
        templates.create(session, name="Typo", mjml=mjml)
    assert caught.value.errors == {"mjml": ["unknown variable 'subscirber' at line 4"]}


def test_unknown_field_filter_and_method_call_are_named(session):
    source = (
        "{{ subscriber.first_nme }}\n{{ subscriber.name | shout }}\n{{ subscriber.name.upper() }}"
    )
    problems = [str(p) for p in sandbox.tree_problems(source)]
    assert problems[0].startswith("unknown field 'first_nme' of subscriber")
    assert problems[0].endswith("at line 1")
    assert problems[1] == "unknown filter 'shout' at line 2"
    assert problems[2].startswith("calls are not allowed") and problems[2].endswith("line 3")


def test_the_subject_cannot_name_itself(session):
    with pytest.raises(ContentError) as caught:
        build_content(session, mjml=VALID, text=None, subject="Re: {{ campaign.subject }}")
    assert "unknown field 'subject' of campaign" in caught.value.errors["subject"][0]


def test_what_the_syntax_tree_cannot_see_is_caught_by_the_trial_render(session):
    # A computed key reaches the sandbox: using what it gives is refused in the sample
    # render, and merely printing it prints nothing.
    computed = '{% set k = "__cla" ~ "ss__" %}'
    with pytest.raises(ContentError) as caught:
        build_content(session, mjml=VALID, text=None, subject=computed + "{{ subscriber[k] + 1 }}")
    assert caught.value.errors["subject"] == [
        "not allowed: access to attribute '__class__' of 'Record' object is unsafe. at line 1"
    ]
    subscriber = sandbox.freeze_value({"name": "Ann"})
    template = sandbox.TEXT.from_string(computed + "[{{ subscriber[k] }}]")
    assert template.render(subscriber=subscriber) == "[]"
    with pytest.raises(ContentError) as caught:
        build_content(session, mjml=VALID, text=None, preheader="{{ 'x' * 100000000 }}")
    assert "too long" in caught.value.errors["mjml"][0]
    # Each filter triples its input: bounded per filter, not by the machine's memory.
    blow_up = "{{ subscriber.name" + " | replace('', 'xx')" * 30 + " }}"
    with pytest.raises(ContentError) as caught:
        build_content(session, mjml=VALID, text=None, subject=blow_up)
    assert caught.value.errors["subject"] == [
        "not allowed: the result of the 'replace' filter would be too long"
        " (over 1,000,000 characters) at line 1"
    ]


def test_arithmetic_on_a_missing_attribute_fails_at_save_not_at_send(session):
    with pytest.raises(ContentError) as caught:
        build_content(session, mjml=VALID, text=None, subject="{{ attributes.points + 1 }}")
    assert caught.value.errors["subject"] == [
        "template error: 'points' is not set (use default()) at line 1"
    ]


def test_ordinary_personalisation_passes(session):
    content = build_content(
        session,
        mjml=VALID,
        text="Hi {{ subscriber.first_name | default('there') | title }}\n"
        "{% for key in attributes %}{{ key }}={{ attributes[key] }} {% endfor %}\n"
        "{% if attributes.plan == 'pro' %}Pro{% endif %}",
        subject="News for {{ attributes.city | default('you') | upper }}",
        preheader="{{ campaign.subject }} and more",
    )
    assert "{{ subscriber.first_name | default('there') }}" in content.html


def test_templates_see_read_only_records_not_objects():
    record = sandbox.freeze_value({"items": "the attribute", "nested": {"a": [1, {"b": 2}]}})
    html = sandbox.HTML.from_string(
        "{{ attributes.items }} {{ attributes.nested.a[1].b }} {{ attributes.nested.a.append }}"
    )
    # `items` is the key, not a dict method; a list is a tuple, which has no append.
    assert html.render(attributes=record) == "the attribute 2 "
    with pytest.raises(AttributeError):
        record.x = 1


# --- resource exhaustion: every render runs on a budget -------------------------------------

# Each payload, on line 2 of an authored text part, and what its error says. Unbounded, these
# took up to 34 s and 4.8 GB each (`'%999999999d' % 1`), or never finished (squaring a number);
# `replace` and `join` were refused only after building a gigabyte.
EXHAUSTING = [
    ("{{ '%999999999d' % 1 }}", "formatting text with % is not allowed; join text with ~"),
    ("{% set f = '%' ~ '999999999d' %}{{ f % 1 }}", "formatting text with % is not allowed"),
    (
        "{% for a in 'x' * 1000 %}{{ 'x' * 1000000 }}{% endfor %}",
        "the message would be longer than 2,000,000 characters",
    ),
    (
        "{% set b %}{% for a in 'x' * 9000 %}{{ 'y' * 1000 }}{% endfor %}{% endset %}",
        "the message would be longer than 2,000,000 characters",
    ),
    (
        "{% set s = 'x' * 3000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
        "loops would run more than 10,000 times for one message",
    ),
    (
        "{% set s = 'x' * 1000000 %}{% for a in 'x' * 5000 %}"
        "{% set t = s | replace('x', 'y') %}{% endfor %}",
        "the template would do more than 20,000,000 units of work for one message",
    ),
    (
        "{% set s = 'x' * 1000000 %}{% for a in 'x' * 9000 %}{% if 'ab' in s %}{% endif %}"
        "{% endfor %}",
        "units of work",
    ),
    ("{% set s = 'x' * 1000000 %}{% set s = s ~ s %}", "the result of ~ would be too long"),
    ("{% set s = 'x' * 1000000 %}{% set s = s + s %}", "the result of + would be too long"),
    (
        "{% set s = 'x' * 100000 %}{% set a = [s, s, s, s, s, s, s, s, s, s, s] %}{{ a }}",
        "the list would be too long",
    ),
    (
        "{{ ('x' * 1000000) | replace('x', 'x' * 1000) }}",
        "'replace' filter would be too long (over 1,000,000",
    ),
    ("{{ ('x' * 1000000) | join('y' * 1000) }}", "'join' filter would be too long (over 1,000,000"),
    ("{% set n = 99999999 %}" + "{% set n = n * n %}" * 40, "too large a number"),
]


@pytest.mark.parametrize(("payload", "error"), EXHAUSTING)
def test_content_that_would_exhaust_memory_or_time_is_refused_at_save(session, payload, error):
    with pytest.raises(ContentError) as caught:
        build_content(session, mjml=VALID, text="Hi\n" + payload + "\nBye\n")
    problems = caught.value.errors["text"]
    assert len(problems) == 1 and error in problems[0], problems
    assert problems[0].endswith("at line 2"), problems


def test_the_budget_leaves_ordinary_content_alone(session):
    text = (
        "{% for tag in ['a', 'b', 'c', 'd'] %}{{ loop.index % 2 }}{{ tag | upper }}{% endfor %}\n"
        "{% set who = subscriber.first_name ~ ' ' ~ subscriber.last_name %}{{ who[:3] }}\n"
        "{% set pair = [subscriber.first_name, attributes.city] %}{{ pair | join('/') }}\n"
        "{% if 'Os' in attributes.city %}north{% endif %} {{ 7 * 6 + 0 }} {{ 17 % 5 }}\n"
        "{% for c in attributes.city %}{{ c }}.{% endfor %}\n"
    )
    content = build_content(session, mjml=VALID, text=text)
    template = sandbox.TEXT.from_string(content.text)
    city = sandbox.freeze_value({"city": "Oslo"})
    subscriber = sandbox.freeze_value({"first_name": "Sam", "last_name": "Lee"})
    assert template.render(subscriber=subscriber, attributes=city) == (
        "1A0B1C0D\nSam\nSam/Oslo\nnorth 42 2\nO.s.l.o.\n"
    )


def test_the_budget_is_per_render_not_per_template():
    # 6,000 loop passes each: over the limit together, within it one at a time.
    template = sandbox.TEXT.from_string("{% for c in attributes.code %}{% endfor %}ok")
    code = sandbox.freeze_value({"code": "x" * 6000})
    assert [template.render(attributes=code) for _ in range(3)] == ["ok"] * 3
    assert budget.MAX_ITERATIONS < 6000 * 2


# A template that passes every check with the sample subscriber, whose cost hangs on data.
BY_DATA = CAMPAIGN_MJML.replace(
    "Our autumn offer is here.",
    "{% for a in attributes.bio | default('') %}{% for b in attributes.bio | default('') %}"
    "{% endfor %}{% endfor %}Our autumn offer is here.",
)


def test_subscriber_data_past_a_limit_is_a_content_error_for_that_recipient(session, settings):
    campaign = _campaign(session, mjml=BY_DATA)
    prepared = _prepared(session, campaign, settings)
    short = _subscriber(session, attributes={"bio": "x" * 90})  # 8,100 passes
    long = _subscriber(session, "long@example.org", attributes={"bio": "x" * 120})  # 14,400
    assert "autumn offer" in prepared.render(_recipient(session, campaign, short)).html
    with pytest.raises(CampaignContentError) as caught:
        prepared.render(_recipient(session, campaign, long))
    assert caught.value.field == "mjml"
    assert "loops would run more than 10,000 times for one message" in caught.value.problems[0]


def test_the_sender_fails_only_the_recipient_whose_data_exceeds_a_limit(
    api, campaign_session, run_jobs, faulty_smtp
):
    topic, ids = make_audience(campaign_session, 3)
    reader = campaign_session.get(Subscriber, ids[1])
    reader.attributes = {"first_name": "Reader1", "bio": "x" * 200}
    campaign = make_campaign(campaign_session, topic, mjml=BY_DATA)

    response = api("post", f"/api/v1/campaigns/{campaign.id}/send")
    assert response.status_code == 202, response.json
    run_jobs()

    assert sorted(faulty_smtp.by_recipient()) == ["reader0@example.org", "reader2@example.org"]
    campaign_session.expire_all()
    rows = campaign_session.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id))
    deliveries = {d.subscriber_id: d for d in rows}
    assert deliveries[ids[1]].status == DeliveryStatus.FAILED
    assert "loops would run more than 10,000 times" in deliveries[ids[1]].error
    assert {deliveries[i].status for i in (ids[0], ids[2])} == {DeliveryStatus.SENT}


def test_failures_at_the_edges_of_pages_fail_only_their_own_recipients(
    campaign_app, campaign_settings, campaign_session, faulty_smtp
):
    """The sender renders each message while the previous mark commits: a recipient whose
    data breaks the template fails alone, first or last in a page, and the page goes on."""
    from mailer.campaigns import lifecycle
    from mailer.campaigns.sending import Next, Sender

    topic, ids = make_audience(campaign_session, 5)
    for i in (0, 3, 4):  # the first of page one, the last of page two, alone in page three
        reader = campaign_session.get(Subscriber, ids[i])
        reader.attributes = {"first_name": f"Reader{i}", "bio": "x" * 200}
    campaign_session.commit()
    campaign = make_campaign(campaign_session, topic, mjml=BY_DATA)
    settings = campaign_settings(MAILER_SEND_BATCH_SIZE="2")
    with campaign_app.app_context():
        lifecycle.send_now(campaign_session, campaign.id)
        assert lifecycle.begin(campaign_session, campaign.id)
        sessions = campaign_app.extensions["mailer.db"]
        tokens = campaign_app.extensions["mailer.tokens"]
        result = Sender(sessions, settings, tokens, campaign.id).run()
    assert result.next is Next.DONE
    assert sorted(faulty_smtp.by_recipient()) == ["reader1@example.org", "reader2@example.org"]
    for received in faulty_smtp.received:  # each message was made for the one it went to
        assert received.message()["To"].addresses[0].addr_spec == received.rcpt
    campaign_session.expire_all()
    rows = campaign_session.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id))
    statuses = {d.subscriber_id: d.status for d in rows}
    assert [statuses[i] for i in ids] == [
        DeliveryStatus.FAILED,
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.FAILED,
    ]
