"""Settings in the admin: values over the environment's that workers use without a deploy,
secrets never shown back, every change on an append-only record."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from mailer.accounts.models import Role
from mailer.database import utcnow
from mailer.devmail.catcher import Catcher
from mailer.extensions import jobs
from mailer.settings import store
from mailer.settings.models import SettingChange, SettingValue
from mailer.subscribers.models import Subscriber, SubscriberStatus
from tests import signups
from tests.admin.conftest import csrf_of
from tests.conftest import SMTP_PORTS, form_tokens
from tests.factories import make_form
from tests.inbox import Inbox
from tests.services import free_port

PAGE = "/admin/settings/"


def _post(client, path, data):
    return client.post(path, data={"csrf_token": csrf_of(client, PAGE), **data})


def _effective(app, session):
    store.invalidate()  # as another process would see it, once its cache has expired
    session.expire_all()
    return store.effective(session, app.config["MAILER"])


@pytest.fixture
def other_smtp(tmp_path) -> Iterator[tuple[Catcher, Inbox]]:
    """A second SMTP server: where mail goes once the admin points the SMTP URL at it."""
    catcher = Catcher(tmp_path / "other-maildir", port=free_port()).start()
    SMTP_PORTS.add(catcher.port)
    yield catcher, Inbox(catcher.handler.path)
    catcher.stop()


def test_the_rate_limit_saved_on_the_page_is_in_force_and_on_record(app, session, staff_client):
    admin = staff_client(Role.ADMIN)
    page = admin.get(PAGE).get_data(as_text=True)
    assert "no limit per second" in page and "from the environment" in page

    response = _post(admin, "/admin/settings/rates", {"per_second": "25", "per_hour": "9000"})
    assert response.status_code == 302
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "25 per second" in page and "9,000 per hour" in page
    assert "workers at their next job" in page

    settings = _effective(app, session)
    assert (settings.send_rate_per_second, settings.send_rate_per_hour) == (25, 9000)
    (change,) = session.scalars(select(SettingChange)).all()
    assert change.key == "rates" and change.user_email.startswith("admin")
    assert change.old_value == {"per_second": 0, "per_hour": 0}
    assert change.new_value == {"per_second": 25, "per_hour": 9000}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"per_second": "-1", "per_hour": "0"}, "per_second"),
        ({"per_second": "fast", "per_hour": "0"}, "per_second"),
        ({"per_second": "1"}, "per_hour"),
    ],
)
def test_a_bad_rate_is_refused_naming_the_field_and_keeping_the_input(
    app, session, staff_client, data, field
):
    admin = staff_client(Role.ADMIN)
    response = _post(admin, "/admin/settings/rates", data)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f"<strong>{field}</strong>" in page
    assert f'id="f-{field}" name="{field}" value="{data.get(field, "")}"' in page
    assert _effective(app, session).send_rate_per_second == 0


def test_smtp_password_is_sealed_masked_and_kept_only_for_the_same_server(
    app, session, staff_client
):
    admin = staff_client(Role.ADMIN)
    url = "smtp://mailer:s3cret-pass@smtp.example.org:587?starttls=1"
    assert _post(admin, "/admin/settings/smtp", {"url": url}).status_code == 302

    page = admin.get(PAGE).get_data(as_text=True)
    assert "s3cret-pass" not in page
    assert "smtp://mailer:********@smtp.example.org:587?starttls=1" in page
    raw = session.get(SettingValue, "smtp").value
    assert "s3cret" not in str(raw) and "smtp.example.org" not in str(raw)
    history = " ".join(str(c.new_value) for c in session.scalars(select(SettingChange)))
    assert "s3cret" not in history and "********" in history
    assert _effective(app, session).smtp_url == url

    # Sent back masked with only an option changed: the password stays.
    masked = "smtp://mailer:********@smtp.example.org:587?starttls=1&timeout=20"
    assert _post(admin, "/admin/settings/smtp", {"url": masked}).status_code == 302
    assert _effective(app, session).smtp_url == url + "&timeout=20"

    # Masked but pointed at another server: the password must be typed again.
    response = _post(
        admin, "/admin/settings/smtp", {"url": "smtp://mailer:********@evil.example:587"}
    )
    assert response.status_code == 422
    assert "enter the password" in response.get_data(as_text=True)
    assert _effective(app, session).smtp_url == url + "&timeout=20"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://smtp.example.org", "smtp://"),
        ("smtp://", "name the server"),
        ("smtp://host:99999", "port"),
        ("smtp://host?tls=1", "unknown option"),
        ("", "required"),
    ],
)
def test_a_bad_smtp_url_is_refused(staff_client, url, message):
    admin = staff_client(Role.ADMIN)
    response = _post(admin, "/admin/settings/smtp", {"url": url})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page.lower() and "<strong>url</strong>" in page


def test_system_mail_goes_to_the_smtp_server_set_in_the_admin_without_a_restart(
    app, client, session, staff_client, work, inbox, other_smtp
):
    catcher, other_inbox = other_smtp
    make_form(session)
    admin = staff_client(Role.ADMIN)
    response = _post(admin, "/admin/settings/smtp", {"url": f"smtp://127.0.0.1:{catcher.port}"})
    assert response.status_code == 302

    page = client.get("/subscribe/news").get_data(as_text=True)
    data = {**form_tokens(page), "email": "ann@example.com", "consent": "on"}
    assert client.post("/subscribe/news", data=data).status_code == 200
    signups.drain(client.application)
    work()
    assert other_inbox.only("ann@example.com")["Subject"] == "Please confirm your subscription"
    assert inbox.messages() == []


def test_sender_identities_are_validated_per_row_and_become_the_choices(app, session, staff_client):
    admin = staff_client(Role.ADMIN)
    bad = {
        "identities-a1-name": "Shop news",
        "identities-a1-email": "news@shop.example",
        "identities-b2-name": "Support",
        "identities-b2-email": "not-an-address",
        "identities-c3-name": "",
        "identities-c3-email": "",
    }
    response = _post(admin, "/admin/settings/identities", bad)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "<strong>identities.1.email</strong>" in page
    assert 'value="not-an-address"' in page and 'value="Shop news"' in page

    good = {
        **bad,
        "identities-b2-email": "help@shop.example",
        "identities-b2-reply_to": "desk@shop.example",
        "identities-d4-name": "Old brand",
        "identities-d4-email": "old@brand.example",
        "identities-d4-remove": "1",
    }
    assert _post(admin, "/admin/settings/identities", good).status_code == 302
    identities = _effective(app, session).sender_identities
    assert [(i.name, i.email, i.reply_to) for i in identities] == [
        ("Shop news", "news@shop.example", ""),
        ("Support", "help@shop.example", "desk@shop.example"),
    ]
    # A header injection attempt in a name is refused.
    evil = {"identities-x-name": "Shop\r\nBcc: all@x.example", "identities-x-email": "a@b.example"}
    assert _post(admin, "/admin/settings/identities", evil).status_code == 422


def test_an_empty_identity_list_is_refused(staff_client):
    admin = staff_client(Role.ADMIN)
    response = _post(admin, "/admin/settings/identities", {})
    assert response.status_code == 422
    assert "between 1 and" in response.get_data(as_text=True)


def test_tracking_defaults_and_reset_to_the_environment(app, session, staff_client):
    admin = staff_client(Role.ADMIN)
    assert (
        _post(admin, "/admin/settings/tracking", {"opens": "off", "clicks": "on"}).status_code
        == 302
    )
    settings = _effective(app, session)
    assert (settings.track_opens_default, settings.track_clicks_default) == (False, True)

    assert _post(admin, "/admin/settings/tracking/reset", {}).status_code == 302
    settings = _effective(app, session)
    assert (settings.track_opens_default, settings.track_clicks_default) == (True, True)
    last = session.scalars(select(SettingChange).order_by(SettingChange.id.desc())).first()
    assert last.key == "tracking" and last.new_value is None
    page = admin.get("/admin/settings/history").get_data(as_text=True)
    assert "environment default" in page and "opens: off" in page


def test_the_retention_job_uses_the_days_set_in_the_admin(app, session, staff_client, work):
    admin = staff_client(Role.ADMIN)
    old = utcnow() - timedelta(days=10)
    session.add(
        Subscriber(
            email="never@example.com",
            status=SubscriberStatus.PENDING,
            created_at=old,
            confirmation_sent_at=old,
        )
    )
    session.commit()
    with app.app_context():
        jobs.queue.enqueue("workers.jobs.apply_retention")
    work()
    assert session.scalar(select(Subscriber.id).where(Subscriber.email == "never@example.com"))

    data = {"pending_days": "7", "tracking_days": "395"}
    assert _post(admin, "/admin/settings/retention", data).status_code == 302
    with app.app_context():
        jobs.queue.enqueue("workers.jobs.apply_retention")
    work()
    session.expire_all()
    assert (
        session.scalar(select(Subscriber.id).where(Subscriber.email == "never@example.com")) is None
    )


def test_the_history_is_append_only(app, session, staff_client):
    admin = staff_client(Role.ADMIN)
    _post(admin, "/admin/settings/rates", {"per_second": "5", "per_hour": "0"})
    session.rollback()
    for statement in ("UPDATE setting_changes SET user_email = 'x'", "DELETE FROM setting_changes"):
        with pytest.raises(DatabaseError):
            session.execute(text(statement))
            session.flush()
        session.rollback()
    assert session.scalar(select(SettingChange.user_email)).startswith("admin")


def test_values_sealed_under_an_old_secret_key_give_way_to_the_environment(
    make_app, make_settings, session, staff_client
):
    admin = staff_client(Role.ADMIN)
    _post(admin, "/admin/settings/smtp", {"url": "smtp://u:pw@smtp.example.org:25"})
    rotated = make_app(make_settings(MAILER_SECRET_KEY="a-new-secret-key-after-rotation"))
    settings = rotated.config["MAILER"]
    session.expire_all()
    store.invalidate()
    assert store.effective(session, settings).smtp_url == settings.smtp_url
    assert store.unusable(session, settings.secret_key) == ["smtp"]


def test_the_history_page_shows_an_smtp_password_masked(staff_client, session):
    admin = staff_client(Role.ADMIN)
    _post(admin, "/admin/settings/smtp", {"url": "smtp://u:pw-123456@smtp.example.org:25"})
    page = admin.get("/admin/settings/history").get_data(as_text=True)
    assert "pw-123456" not in page
    assert re.search(r"u:\*{8}@smtp\.example\.org", page)


# -- DKIM --------------------------------------------------------------------------------------

_VALUE = re.compile(r'<textarea[^>]*id="dkim-value"[^>]*>([^<]+)</textarea>')
_NAME = re.compile(r'<code id="dkim-name">([^<]+)</code>')


def _generate(admin, domain="shop.example", selector="nov2026"):
    return _post(admin, "/admin/settings/dkim", {"domain": domain, "selector": selector})


def test_a_generated_key_shows_the_dns_record_and_is_kept_sealed(app, session, staff_client):
    admin = staff_client(Role.ADMIN)
    assert "No key generated yet" in admin.get(PAGE).get_data(as_text=True)
    assert _generate(admin, "Shop.Example.", "nov2026").status_code == 302

    page = admin.get(PAGE).get_data(as_text=True)
    assert _NAME.search(page).group(1) == "nov2026._domainkey.shop.example"
    value = _VALUE.search(page).group(1)
    assert value.startswith("v=DKIM1; k=rsa; p=MII")
    zone = re.search(r'<pre class="code" id="dkim-zone">([^<]+)</pre>', page).group(1)
    strings = re.findall(r"&#34;([^&]+)&#34;", zone)
    assert len(strings) == 2 and all(len(s) <= 255 for s in strings)
    assert "".join(strings) == value
    assert "does not look the record up" in page

    from mailer.settings.models import StoredDkimKey

    stored = session.scalars(select(StoredDkimKey)).one()
    assert "PRIVATE KEY" not in stored.private_key_sealed
    settings = _effective(app, session)
    assert (settings.dkim_domain, settings.dkim_selector) == ("shop.example", "nov2026")
    assert settings.dkim_private_key.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert b"PRIVATE" not in repr(settings).encode()


@pytest.mark.parametrize(
    ("domain", "selector", "field"),
    [
        ("", "s1", "domain"),
        ("localhost", "s1", "domain"),
        ("shop.example", "", "selector"),
        ("shop.example", "bad selector", "selector"),
        ("-shop.example", "s1", "domain"),
        ("shop.example", "s1;p=x", "selector"),
    ],
)
def test_a_bad_domain_or_selector_is_refused_naming_the_field(
    session, staff_client, domain, selector, field
):
    admin = staff_client(Role.ADMIN)
    response = _generate(admin, domain, selector)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f"<strong>{field}</strong>" in page
    assert f'name="selector" value="{selector}"' in page.replace("&#34;", '"')


def test_the_signing_key_cannot_be_deleted_but_an_older_one_can(session, staff_client):
    from mailer.settings.models import StoredDkimKey

    admin = staff_client(Role.ADMIN)
    _generate(admin, selector="old")
    _generate(admin, selector="new")
    again = _generate(admin, selector="new")
    assert again.status_code == 422 and "choose a new one" in again.get_data(as_text=True)
    old, new = session.scalars(select(StoredDkimKey).order_by(StoredDkimKey.id)).all()
    response = _post(admin, f"/admin/settings/dkim/{new.id}/delete", {})
    assert "signs now" in admin.get(response.headers["Location"]).get_data(as_text=True)
    _post(admin, f"/admin/settings/dkim/{old.id}/delete", {})
    session.expire_all()
    assert [k.selector for k in session.scalars(select(StoredDkimKey))] == ["new"]


def test_a_campaign_sent_after_generating_a_key_verifies_against_the_shown_record(
    app, session, staff_client, work, smtp_sink
):
    """The whole path: the page generates a key and shows its record; a campaign sent
    afterwards (API → RQ → SMTP) carries a signature dkimpy verifies with that record."""
    import mailbox

    import dkim

    from mailer.accounts.users import create_api_key
    from tests.campaigns.conftest import make_audience, make_campaign

    admin = staff_client(Role.ADMIN)
    assert _generate(admin).status_code == 302
    page = admin.get(PAGE).get_data(as_text=True)
    record = _VALUE.search(page).group(1).encode()
    name = _NAME.search(page).group(1).encode() + b"."

    topic, _ = make_audience(session, 2)
    campaign = make_campaign(session, topic)
    _, key = create_api_key(session, Role.MARKETER)
    sent = app.test_client().post(
        f"/api/v1/campaigns/{campaign.id}/send", headers={"Authorization": f"Bearer {key}"}
    )
    assert sent.status_code == 202, sent.json
    Inbox(smtp_sink.handler.path).clear()
    work()

    box = mailbox.Maildir(str(smtp_sink.handler.path), create=False)
    # As sent: without the two X-Catcher-* lines the sink puts on top.
    received = [box.get_bytes(k).split(b"\r\n", 2)[2] for k in sorted(box.keys())]
    assert len(received) == 2

    def lookup(qname, timeout=5):
        return record if qname == name else None

    for data in received:
        assert b"d=shop.example" in data and b"s=nov2026" in data
        assert dkim.verify(data, dnsfunc=lookup)
        tampered = data.replace(b"news@shop.example", b"news@sh0p.example", 1)
        assert not dkim.verify(tampered, dnsfunc=lookup)


def test_a_key_configured_in_the_environment_wins(make_app, make_settings, tmp_path, staff_client):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "env.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    app = make_app(
        make_settings(
            MAILER_DKIM_DOMAIN="env.example",
            MAILER_DKIM_SELECTOR="envsel",
            MAILER_DKIM_PRIVATE_KEY=str(pem),
        )
    )
    from mailer.accounts import users
    from tests.admin.conftest import PASSWORD, sign_in

    session = app.extensions["mailer.db"]()
    users.create_user(session, "boss@staff.example", PASSWORD, Role.ADMIN)
    admin = app.test_client()
    sign_in(admin, "boss@staff.example")
    assert _generate(admin).status_code == 302
    page = admin.get(PAGE).get_data(as_text=True)
    assert "The environment configures a DKIM key" in page
    settings = _effective(app, session)
    assert (settings.dkim_domain, settings.dkim_key_path) == ("env.example", str(pem))
    assert settings.dkim_private_key == b""
    session.close()
