"""Campaign messages as recipients get them: personalised, escaped, tracked only when allowed,
with the headers mail providers ask for, DKIM-signed, and parseable by Python's email parser."""

from __future__ import annotations

import base64
import re
import subprocess
from email import policy
from email.parser import BytesParser, Parser
from html.parser import HTMLParser

import dkim
import pytest
from sqlalchemy.orm import Session

from mailer.campaigns import identity
from mailer.campaigns.models import Campaign, Delivery, Template
from mailer.campaigns.rendering import (
    CampaignContentError,
    PreparedCampaign,
    Recipient,
    freeze,
)
from mailer.delivery import transport
from mailer.delivery.wire import HeaderInjection
from mailer.subscribers import forms
from mailer.subscribers.models import Subscriber
from mailer.tokens import Purpose, from_settings

MJML = (
    "<mjml>\n"
    "  <mj-head><mj-title>{{ campaign.subject }}</mj-title></mj-head>\n"
    "  <mj-body>\n"
    "    <mj-section><mj-column>\n"
    '      <mj-text>Hello {{ subscriber.first_name | default("there") }}, '
    'news from {{ attributes.city | default("here") }}.</mj-text>\n'
    "      <mj-text>About you: {{ attributes.bio }}</mj-text>\n"
    '      <mj-text><a href="https://shop.example/offer?a=1&amp;b=2">Read the offer</a> or '
    '<a href="mailto:help@shop.example">write to us</a>.</mj-text>\n'
    '      <mj-button href="https://shop.example/buy">Buy now</mj-button>\n'
    '      <mj-text><a href="{{ view_in_browser_url }}">View in browser</a> | '
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a> | '
    '<a href="{{ preferences_url }}">Preferences</a></mj-text>\n'
    "    </mj-column></mj-section>\n"
    "  </mj-body>\n"
    "</mjml>"
)
NO_UNSUBSCRIBE = MJML.replace('<a href="{{ unsubscribe_url }}">Unsubscribe</a> | ', "")


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim-campaign")
    private = d / "private.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(private), "2048"], check=True, capture_output=True
    )
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def _verifies(message: bytes, record: bytes) -> bool:
    def lookup(name, timeout=5):
        return record if name == b"news2026._domainkey.shop.example." else None

    return dkim.verify(message, dnsfunc=lookup)


def _campaign(session: Session, mjml: str = MJML, **values) -> Campaign:
    topic = forms.ensure_topic(session, "news", "Weekly News", "")
    template = Template(name="Weekly", mjml=mjml)
    session.add(template)
    session.flush()
    campaign = Campaign(
        name=values.pop("name", "Week 12"),
        subject=values.pop("subject", "News for {{ subscriber.first_name | default('you') }}"),
        from_name=values.pop("from_name", "Shop News"),
        from_email="news@shop.example",
        reply_to=values.pop("reply_to", "help@shop.example"),
        template_id=template.id,
        topic_id=topic.id,
        **values,
    )
    session.add(campaign)
    session.commit()
    return campaign


def _subscriber(session: Session, email="ann@example.org", name="Ann Lee", **values) -> Subscriber:
    subscriber = Subscriber(email=email, name=name, **values)
    session.add(subscriber)
    session.flush()
    return subscriber


def _recipient(session: Session, campaign: Campaign, subscriber: Subscriber) -> Recipient:
    delivery = Delivery(campaign_id=campaign.id, subscriber_id=subscriber.id)
    session.add(delivery)
    session.flush()
    return Recipient.from_subscriber(subscriber, delivery.id)


def _prepared(session, campaign, settings, test=False) -> PreparedCampaign:
    if campaign.frozen_html is None:
        # On SQLite the compiled-MJML cache is written in its own transaction: freeze outside
        # one that holds writes, as the product does.
        session.commit()
        freeze(session, campaign)
    return PreparedCampaign.from_campaign(
        campaign, campaign.topic, settings, from_settings(settings), test=test
    )


def _parse(data: bytes):
    return BytesParser(policy=policy.default).parsebytes(data)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.hrefs.append(attrs.get("href", ""))
        if tag == "img":
            self.images.append(attrs.get("src", ""))


def _links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def _token(url: str, kind: str) -> str:
    match = re.fullmatch(rf"http://localhost/{kind}/([^/]+)", url)
    assert match, url
    return match.group(1)


# --- freezing -------------------------------------------------------------------------------


def test_a_template_without_an_unsubscribe_link_cannot_be_frozen(session):
    campaign = _campaign(session, mjml=NO_UNSUBSCRIBE)
    with pytest.raises(CampaignContentError) as caught:
        freeze(session, campaign)
    assert caught.value.field == "mjml"
    assert "unsubscribe link" in caught.value.problems[0]
    assert campaign.frozen_html is None


def test_the_frozen_content_is_sent_even_after_the_template_changes(session, settings):
    campaign = _campaign(session)
    freeze(session, campaign)
    campaign.template.mjml = MJML.replace("Hello", "Goodbye")
    session.commit()
    rendered = _prepared(session, campaign, settings).render(
        _recipient(session, campaign, _subscriber(session))
    )
    assert "Hello Ann" in rendered.html and "Goodbye" not in rendered.html


# --- personalisation and escaping -----------------------------------------------------------


def test_personalisation_with_defaults(session, settings):
    campaign = _campaign(session)
    prepared = _prepared(session, campaign, settings)
    ann = prepared.render(_recipient(session, campaign, _subscriber(session)))
    nameless = prepared.render(
        _recipient(session, campaign, _subscriber(session, "x@example.org", name=""))
    )
    preferred = prepared.render(
        _recipient(
            session,
            campaign,
            _subscriber(
                session, "y@example.org", attributes={"first_name": "Bea", "city": "Bergen"}
            ),
        )
    )
    assert "Hello Ann, news from here." in ann.html and ann.subject == "News for Ann"
    assert "Hello there, news from here." in nameless.html and nameless.subject == "News for you"
    assert "Hello Bea, news from Bergen." in preferred.html
    assert "<title>News for Bea</title>" in preferred.html  # campaign.subject, rendered


def test_subscriber_data_is_escaped_and_never_evaluated(session, settings):
    campaign = _campaign(session, subject="For {{ attributes.city }}")
    hostile = {
        "bio": "<script>alert(1)</script> {{ 7*7 }} {% raw %}",
        "city": "{{ subscriber.email }}\r\nBcc: x@evil.example",
    }
    rendered = _prepared(session, campaign, settings).render(
        _recipient(session, campaign, _subscriber(session, attributes=hostile))
    )
    assert "About you: &lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} {% raw %}" in rendered.html
    # Outside the links: their signed tokens are random text and may hold "49" by chance.
    visible = re.sub(r'(?:href|src)="[^"]*"', "", rendered.html)
    assert "<script>" not in visible and "49" not in visible
    # The text part is not HTML: the same data, unescaped, still not evaluated.
    assert "About you: <script>alert(1)</script> {{ 7*7 }} {% raw %}" in rendered.text
    # A line break in data cannot start a header: the subject is one line.
    assert rendered.subject == "For {{ subscriber.email }} Bcc: x@evil.example"
    msg = _parse(rendered.data)
    assert msg["Bcc"] is None and msg["Subject"] == rendered.subject


def test_a_recipient_whose_data_breaks_the_template_is_a_content_error(session, settings):
    campaign = _campaign(session, subject="You have {{ attributes.points | default(0) + 1 }}")
    prepared = _prepared(session, campaign, settings)
    good = _subscriber(session, attributes={"points": 41})
    bad = _subscriber(session, "bad@example.org", attributes={"points": "many"})
    assert prepared.render(_recipient(session, campaign, good)).subject == "You have 42"
    with pytest.raises(CampaignContentError) as caught:
        prepared.render(_recipient(session, campaign, bad))
    assert caught.value.field == "subject" and "at line 1" in caught.value.problems[0]


# --- tracking -------------------------------------------------------------------------------


def test_with_tracking_static_links_become_signed_click_links_and_a_pixel_is_added(
    session, settings
):
    campaign = _campaign(session)
    recipient = _recipient(session, campaign, _subscriber(session))
    rendered = _prepared(session, campaign, settings).render(recipient)
    tokens = from_settings(settings)
    links = _links(rendered.html)

    clicks = [h for h in links.hrefs if h.startswith("http://localhost/t/c/")]
    payloads = [tokens.loads(Purpose.CLICK, _token(h, "t/c")) for h in clicks]
    assert payloads == [
        {"d": recipient.delivery_id, "u": "https://shop.example/offer?a=1&b=2", "i": 0},
        {"d": recipient.delivery_id, "u": "https://shop.example/buy", "i": 1},
    ]
    # Our own links and mailto: stay as they are.
    assert "mailto:help@shop.example" in links.hrefs
    assert any(h.startswith("http://localhost/unsubscribe/") for h in links.hrefs)
    assert any(h.startswith("http://localhost/preferences/") for h in links.hrefs)
    assert any(h.startswith("http://localhost/m/") for h in links.hrefs)

    (pixel,) = [src for src in links.images if "/t/o/" in src]
    assert tokens.loads(Purpose.OPEN, _token(pixel, "t/o")) == {"d": recipient.delivery_id}
    assert re.search(
        r'<img src="[^"]+/t/o/[^"]+" width="1" height="1" alt=""[^>]*></body>', rendered.html
    )


@pytest.mark.parametrize("off", ["campaign", "subscriber", "test send"])
def test_without_tracking_there_is_no_pixel_and_links_are_as_written(session, settings, off):
    campaign = _campaign(session)
    subscriber = _subscriber(session)
    if off == "campaign":
        campaign.track_opens = campaign.track_clicks = False
    if off == "subscriber":
        subscriber.tracking_enabled = False
    recipient = _recipient(session, campaign, subscriber)
    rendered = _prepared(session, campaign, settings, test=off == "test send").render(recipient)
    links = _links(rendered.html)
    assert "/t/" not in rendered.html
    assert "https://shop.example/offer?a=1&b=2" in links.hrefs
    assert "https://shop.example/buy" in links.hrefs
    if off == "test send":
        msg = _parse(rendered.data)
        assert rendered.subject == "[Test] News for Ann" == msg["Subject"]
        assert msg["X-Mailer-Test"] == "1"
        # Links still work in a test.
        assert any(h.startswith("http://localhost/unsubscribe/") for h in links.hrefs)


def test_only_opens_tracked_keeps_links_as_written(session, settings):
    campaign = _campaign(session, track_clicks=False)
    rendered = _prepared(session, campaign, settings).render(
        _recipient(session, campaign, _subscriber(session))
    )
    assert "/t/c/" not in rendered.html and "/t/o/" in rendered.html


# --- the message on the wire ----------------------------------------------------------------


def test_headers_for_mail_providers(make_settings, session):
    settings = make_settings(MAILER_UNSUBSCRIBE_MAILTO="unsubscribe@shop.example")
    campaign = _campaign(session, preheader="Hi {{ subscriber.first_name }} & friends <3")
    subscriber = _subscriber(session)
    recipient = _recipient(session, campaign, subscriber)
    rendered = _prepared(session, campaign, settings).render(recipient)
    msg = _parse(rendered.data)
    tokens = from_settings(settings)

    assert msg["From"].addresses[0].display_name == "Shop News"
    assert msg["From"].addresses[0].addr_spec == "news@shop.example"
    assert msg["To"].addresses[0].addr_spec == "ann@example.org"
    assert msg["To"].addresses[0].display_name == "Ann Lee"
    assert msg["Reply-To"].addresses[0].addr_spec == "help@shop.example"
    assert msg["Subject"] == "News for Ann" and msg["Date"].datetime is not None
    assert msg["Message-ID"] == f"<{rendered.message_id}>"
    assert identity.parse(settings.secret_key, msg["Message-ID"]) == identity.MessageRef(
        campaign.id, recipient.delivery_id
    )
    https, mailto = [part.strip() for part in str(msg["List-Unsubscribe"]).split(",")]
    assert mailto == "<mailto:unsubscribe@shop.example>"
    token = _token(https.strip("<>"), "unsubscribe")
    assert tokens.loads(Purpose.UNSUBSCRIBE, token) == {
        "s": subscriber.id,
        "t": ["news"],
        "m": None,
    }
    assert https.strip("<>") in rendered.html  # the same link as in the body
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == '"Weekly News" <news.list-id.localhost>'
    assert msg["Feedback-ID"] == f"{campaign.id}:news:mailer:localhost"
    assert msg["Precedence"] == "bulk"
    assert msg.get_content_type() == "multipart/alternative"
    assert (rendered.envelope_from, rendered.envelope_to) == (
        "news@shop.example",
        "ann@example.org",
    )
    assert not rendered.smtputf8

    # Both parts decode to exactly what was rendered.
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert html.get_content().replace("\r\n", "\n") == rendered.html
    assert text.get_content().replace("\r\n", "\n") == rendered.text
    # The preheader: hidden preview text right after <body>, personalised and escaped.
    assert re.search(
        r"<body[^>]*><div style=\"display:none;[^\"]*\">Hi Ann &amp; friends &lt;3</div>",
        rendered.html,
    )
    # CRLF only, header lines within 998, body lines within 76 characters.
    data = rendered.data
    assert b"\n" not in data.replace(b"\r\n", b"")
    head, body = data.split(b"\r\n\r\n", 1)
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert max(len(line) for line in body.split(b"\r\n")) <= 76


def test_text_part_is_readable_with_its_links(session, settings):
    campaign = _campaign(session)
    rendered = _prepared(session, campaign, settings).render(
        _recipient(session, campaign, _subscriber(session))
    )
    text = rendered.text
    assert "Hello Ann, news from here." in text
    assert "Read the offer (https://shop.example/offer?a=1&b=2)" in text
    assert "Buy now (https://shop.example/buy)" in text
    assert re.search(r"Unsubscribe \(http://localhost/unsubscribe/[\w.-]+\)", text)
    assert "<" not in text and "{{" not in text and "&amp;" not in text
    assert max(len(line) for line in text.splitlines() if "http" not in line) <= 78


def test_dkim_signature_verifies_for_non_ascii_and_long_lines(
    make_settings, session, keypair, inbox
):
    private, record = keypair
    settings = make_settings(
        MAILER_DKIM_DOMAIN="shop.example",
        MAILER_DKIM_SELECTOR="news2026",
        MAILER_DKIM_PRIVATE_KEY=str(private),
    )
    campaign = _campaign(
        session,
        subject="Sommertilbud for {{ subscriber.first_name }}: ærfugldyner — 20 % rabatt " * 3,
        from_name="Nyhetsbrev Ødegård",
        preheader="Ønsker du å lese mer? ✉",
    )
    subscriber = _subscriber(
        session,
        "ase@example.no",
        "Åse Ødegård",
        attributes={"bio": "Å" * 3000, "city": "Tromsø"},
    )
    rendered = _prepared(session, campaign, settings).render(
        _recipient(session, campaign, subscriber)
    )
    assert rendered.data.startswith(b"DKIM-Signature:")
    assert _verifies(rendered.data, record)
    msg = _parse(rendered.data)
    assert msg["Subject"] == rendered.subject and "Åse" in rendered.subject
    assert msg["From"].addresses[0].display_name == "Nyhetsbrev Ødegård"
    assert msg["To"].addresses[0].display_name == "Åse Ødegård"
    assert "Å" * 3000 in msg.get_body(("html",)).get_content()
    header = rendered.data.split(b"\r\n\r\n")[0].decode()
    signed = header.split("; h=")[1].split(";")[0].replace("\r\n", "").replace(" ", "")
    assert {"from", "to", "subject", "date", "message-id", "list-unsubscribe"} <= set(
        signed.split(":")
    )
    assert {"list-unsubscribe-post", "list-id", "feedback-id", "reply-to"} <= set(signed.split(":"))
    # Through a real SMTP server: the sink adds its trace headers; the signature survives.
    transport.send(
        transport.SmtpTarget.from_url(settings.smtp_url),
        rendered.envelope_from,
        rendered.envelope_to,
        rendered.data,
    )
    raw = next((inbox.path / "new").iterdir()).read_bytes()
    assert _verifies(raw.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"), record)


def test_a_non_ascii_local_part_goes_out_with_smtputf8(session, settings):
    campaign = _campaign(session)
    rendered = _prepared(session, campaign, settings).render(
        _recipient(session, campaign, _subscriber(session, "åse@example.no", "Åse"))
    )
    assert rendered.smtputf8 and rendered.envelope_to == "åse@example.no"
    assert "åse@example.no".encode() in rendered.data.split(b"\r\n\r\n")[0]
    # Python reads 8-bit headers from text, not bytes.
    msg = Parser(policy=policy.default).parsestr(rendered.data.decode("utf-8"))
    assert msg["To"].addresses[0].addr_spec == "åse@example.no"


# --- header injection ----------------------------------------------------------------------


def test_line_breaks_in_names_are_refused(session, settings):
    campaign = _campaign(session)
    prepared = _prepared(session, campaign, settings)
    eve = _recipient(
        session, campaign, _subscriber(session, "eve@example.org", "Eve\r\nBcc: x@evil.example")
    )
    with pytest.raises(HeaderInjection):
        prepared.render(eve)
    campaign.from_name = "Shop\nBcc: x@evil.example"
    with pytest.raises(HeaderInjection):
        _prepared(session, campaign, settings)


@pytest.mark.parametrize(
    "name",
    [
        "=?utf-8?q?Eve=0D=0ABcc:_x@evil.example?=",  # an encoded word is text, not a header
        'Ann "The Boss" O\'Hara, Jr. <boss@evil.example>',
        "Tab\there",
    ],
)
def test_names_arrive_as_written(session, settings, name):
    campaign = _campaign(session)
    rendered = _prepared(session, campaign, settings).render(
        _recipient(session, campaign, _subscriber(session, "eve@example.org", name))
    )
    msg = _parse(rendered.data)
    assert msg["Bcc"] is None and len(msg["To"].addresses) == 1
    assert msg["To"].addresses[0].display_name == " ".join(name.split())
    assert msg["To"].addresses[0].addr_spec == "eve@example.org"


# --- view in browser -----------------------------------------------------------------------


def test_view_in_browser_shows_the_message_without_tracking(app, client, session, settings):
    campaign = _campaign(session)
    subscriber = _subscriber(session)
    recipient = _recipient(session, campaign, subscriber)
    session.commit()
    freeze(session, campaign)
    session.commit()
    rendered = _prepared(session, campaign, settings).render(recipient)
    view = next(h for h in _links(rendered.html).hrefs if h.startswith("http://localhost/m/"))

    response = client.get(view.removeprefix("http://localhost"))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Hello Ann, news from here." in page
    assert "/t/o/" not in page and "/t/c/" not in page
    assert "https://shop.example/buy" in _links(page).hrefs
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp

    open_token = from_settings(settings).dumps(Purpose.OPEN, {"d": recipient.delivery_id})
    for bad in ("garbage", open_token):
        response = client.get(f"/m/{bad}")
        assert response.status_code == 404
        assert "text/html" in response.headers["Content-Type"]

    # Erased: the delivery row stays for the counts, the person and the page are gone.
    session.delete(subscriber)
    session.commit()
    assert client.get(view.removeprefix("http://localhost")).status_code == 404
