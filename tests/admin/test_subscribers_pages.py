"""Subscriber pages through the test client: search and filters, the profile with its
consent, engagement and deliveries, attributes typed as the API's PATCH allows, every view
of personal data on the staff audit log, and the CSV import from upload to summary with a
real RQ worker and the SMTP sink."""

from __future__ import annotations

import io
import re
from datetime import timedelta

from sqlalchemy import select

from mailer.accounts.models import Role
from mailer.campaigns.models import Campaign, Delivery, DeliveryStatus, Template
from mailer.compliance.models import StaffAccess
from mailer.consent import chain
from mailer.consent.models import ConsentEvent, ConsentEventType
from mailer.database import utcnow
from mailer.delivery import suppressions
from mailer.delivery.models import SuppressionReason
from mailer.subscribers import import_jobs
from mailer.subscribers.import_models import ImportStatus, SubscriberImport
from mailer.subscribers.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Topic,
)
from mailer.tracking.models import EventKind, TrackingEvent
from tests.admin.conftest import csrf_of
from tests.compliance.subjects import EMAIL, subscribed
from tests.factories import make_form
from tests.inbox import link

PAPER = "I want the Shop newsletter by email. Signed at the fair."


def add_subscriber(session, email, status=SubscriberStatus.ACTIVE, topics=()):
    subscriber = Subscriber(email=email, name=email.split("@")[0].title(), status=status)
    for slug, sub_status in topics:
        topic = session.scalar(select(Topic).where(Topic.slug == slug))
        subscriber.subscriptions.append(Subscription(topic=topic, status=sub_status))
    session.add(subscriber)
    session.commit()
    return subscriber


def emails_on(page: str) -> list[str]:
    return re.findall(r'href="/admin/subscribers/\d+">([^<]+)</a>', page)


def accesses(session, action):
    session.expire_all()
    return session.scalars(
        select(StaffAccess).where(StaffAccess.action == action).order_by(StaffAccess.id)
    ).all()


# --- search ---------------------------------------------------------------------------------


def test_search_by_part_of_an_address_status_and_topic(staff_client, session):
    make_form(session, topics=("news", "offers"))
    A, P, U = SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING, SubscriptionStatus.UNSUBSCRIBED
    add_subscriber(session, "ann@shop.example", topics=[("news", A)])
    add_subscriber(session, "bob@shop.example", SubscriberStatus.PENDING, [("news", P)])
    add_subscriber(session, "cy@other.example", topics=[("news", U), ("offers", A)])
    add_subscriber(session, "d_100%@other.example")
    client = staff_client(Role.COMPLIANCE)  # compliance staff may read

    page = client.get("/admin/subscribers/?q=SHOP.example").get_data(as_text=True)
    assert sorted(emails_on(page)) == ["ann@shop.example", "bob@shop.example"]
    page = client.get("/admin/subscribers/?status=pending").get_data(as_text=True)
    assert emails_on(page) == ["bob@shop.example"]
    # With a topic, the status is the one on that topic.
    page = client.get("/admin/subscribers/?topic=news&status=unsubscribed").get_data(as_text=True)
    assert emails_on(page) == ["cy@other.example"]
    page = client.get("/admin/subscribers/?topic=offers").get_data(as_text=True)
    assert emails_on(page) == ["cy@other.example"]
    # "%" and "_" typed into the box mean themselves, not LIKE wildcards.
    assert emails_on(client.get("/admin/subscribers/?q=_100%25").get_data(as_text=True)) == [
        "d_100%@other.example"
    ]
    assert emails_on(client.get("/admin/subscribers/?q=%25").get_data(as_text=True)) == [
        "d_100%@other.example"
    ]

    response = client.get("/admin/subscribers/?topic=nope&status=gone")
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "unknown topic" in text and "unknown status" in text

    logged = accesses(session, "subscribers.list")
    assert logged and logged[0].endpoint == "GET /admin/subscribers/"
    assert logged[0].details == {"q": "SHOP.example"}


def test_the_search_box_gets_only_the_results_back_for_htmx(staff_client, session):
    make_form(session)
    add_subscriber(session, "ann@shop.example")
    client = staff_client(Role.MARKETER)
    html = client.get("/admin/subscribers/?q=ann", headers={"HX-Request": "true"}).get_data(
        as_text=True
    )
    assert html.lstrip().startswith('<div id="results"') and "<html" not in html
    assert emails_on(html) == ["ann@shop.example"]


def test_the_list_is_paged(staff_client, session):
    for i in range(55):
        session.add(Subscriber(email=f"p{i:02d}@example.com"))
    session.commit()
    client = staff_client(Role.MARKETER)
    first = client.get("/admin/subscribers/").get_data(as_text=True)
    second = client.get("/admin/subscribers/?page=2").get_data(as_text=True)
    assert len(emails_on(first)) == 50 and len(emails_on(second)) == 5
    assert "Page 1 of 2 (55)" in first and not set(emails_on(first)) & set(emails_on(second))


# --- profile --------------------------------------------------------------------------------


def test_a_profile_shows_the_consent_timeline_and_is_on_the_staff_log(
    client, session, work, inbox, staff_client
):
    subscribed(client, session, work, inbox)
    erin = session.scalar(select(Subscriber).where(Subscriber.email == EMAIL))
    staff = staff_client(Role.COMPLIANCE)
    page = staff.get(f"/admin/subscribers/{erin.id}").get_data(as_text=True)

    timeline = page.split('id="consent-h"')[1].split("</section>")[0]
    assert timeline.index("requested") < timeline.index("confirmed")
    assert "asked through a script posting JSON (https://shop.example)" in timeline
    assert "confirmed by the link in the confirmation email (double opt-in)" in timeline
    assert "Form news, consent text version 1" in timeline
    version = make_form(session).current_version
    assert version.consent_text in timeline and version.consent_text_sha256 in timeline
    topics = page.split('id="topics-h"')[1].split("</section>")[0]
    assert "News" in topics and ">active</span>" in topics

    (view,) = accesses(session, "subscriber.view")
    assert view.subscriber_id == erin.id and view.user_id is not None
    assert view.subject_masked == "e***@example.com"
    assert view.endpoint == "GET /admin/subscribers/<int(max=2147483647):subscriber_id>"
    # Read-only for compliance staff: no attribute form, no delete buttons.
    assert "Set an attribute" not in page and "/attributes" not in page


def test_a_profile_shows_engagement_with_machine_opens_apart_and_deliveries(staff_client, session):
    make_form(session)
    topic = session.scalar(select(Topic))
    ann = add_subscriber(session, "ann@shop.example", topics=[("news", SubscriptionStatus.ACTIVE)])
    template = Template(name="Autumn", mjml="<mjml></mjml>")
    session.add(template)
    session.flush()
    campaign = Campaign(
        name="Autumn offer",
        subject="Autumn",
        from_name="Shop",
        from_email="news@shop.example",
        template_id=template.id,
        topic_id=topic.id,
    )
    session.add(campaign)
    session.flush()
    sent = utcnow() - timedelta(hours=2)
    delivery = Delivery(
        campaign_id=campaign.id, subscriber_id=ann.id, status=DeliveryStatus.SENT, sent_at=sent
    )
    session.add(delivery)
    session.flush()
    for i, (kind, machine, reason, url) in enumerate(
        [
            (EventKind.OPEN, True, "apple_mpp", None),
            (EventKind.OPEN, False, None, None),
            (EventKind.CLICK, False, None, "https://shop.example/offer"),
        ]
    ):
        session.add(
            TrackingEvent(
                stream_id=f"1-{i}",
                kind=kind,
                occurred_at=sent + timedelta(minutes=i + 1),
                campaign_id=campaign.id,
                delivery_id=delivery.id,
                subscriber_id=ann.id,
                machine=machine,
                reason=reason,
                url=url,
            )
        )
    session.commit()

    page = staff_client(Role.MARKETER).get(f"/admin/subscribers/{ann.id}").get_data(as_text=True)
    engagement = page.split('id="engagement-h"')[1].split("</section>")[0]
    items = re.findall(r"<li>(.*?)</li>", engagement, re.S)
    assert len(items) == 3
    assert "Clicked" in items[0] and "https://shop.example/offer" in items[0]
    assert "Opened" in items[1] and "person" in items[1]
    assert "machine: apple_mpp" in items[2]
    deliveries = page.split('id="deliveries-h"')[1].split("</section>")[0]
    assert "Autumn offer" in deliveries and ">sent</span>" in deliveries
    assert sent.strftime("%Y-%m-%d %H:%M UTC") in deliveries


def test_an_unknown_subscriber_is_a_404(staff_client):
    assert staff_client(Role.MARKETER).get("/admin/subscribers/424242").status_code == 404


# --- attributes -----------------------------------------------------------------------------


def test_marketers_set_typed_attributes_and_delete_them(staff_client, session):
    ann = add_subscriber(session, "ann@shop.example")
    client = staff_client(Role.MARKETER)
    url = f"/admin/subscribers/{ann.id}"
    token = csrf_of(client, url)
    for key, kind, value in [
        ("plan", "text", "pro"),
        ("visits", "number", "12"),
        ("score", "number", "4.5"),
        ("vip", "boolean", "yes"),
        ("birthday", "date", "1990-04-01"),
        ("tags", "list", "cats, dogs,,"),
    ]:
        response = client.post(
            f"{url}/attributes",
            data={"csrf_token": token, "key": key, "kind": kind, "value": value},
        )
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
    session.expire_all()
    assert session.get(Subscriber, ann.id).attributes == {
        "plan": "pro",
        "visits": 12,
        "score": 4.5,
        "vip": True,
        "birthday": "1990-04-01",
        "tags": ["cats", "dogs"],
    }
    page = client.get(url).get_data(as_text=True)
    assert re.search(r'data-attribute="vip".*?<td>boolean</td><td>true</td>', page, re.S)

    response = client.post(f"{url}/attributes/delete", data={"csrf_token": token, "key": "plan"})
    assert response.status_code == 302
    session.expire_all()
    assert "plan" not in session.get(Subscriber, ann.id).attributes
    assert [a.details for a in accesses(session, "subscriber.update")][-1] == {
        "fields": ["attributes"]
    }


def test_a_bad_attribute_value_names_the_field_and_keeps_the_input(staff_client, session):
    ann = add_subscriber(session, "ann@shop.example")
    client = staff_client(Role.MARKETER)
    url = f"/admin/subscribers/{ann.id}"
    token = csrf_of(client, url)
    response = client.post(
        f"{url}/attributes",
        data={"csrf_token": token, "key": "visits", "kind": "number", "value": "twelve"},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "<strong>value</strong>: not a number" in page
    assert 'value="twelve"' in page and 'value="visits"' in page
    response = client.post(
        f"{url}/attributes", data={"csrf_token": token, "key": "x" * 65, "value": "1"}
    )
    assert response.status_code == 422
    assert "attribute names are at most 64 characters" in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Subscriber, ann.id).attributes == {}


def test_compliance_staff_cannot_change_attributes(staff_client, session):
    ann = add_subscriber(session, "ann@shop.example")
    client = staff_client(Role.COMPLIANCE)
    token = csrf_of(client, f"/admin/subscribers/{ann.id}")
    for path in ("attributes", "attributes/delete"):
        response = client.post(
            f"/admin/subscribers/{ann.id}/{path}",
            data={"csrf_token": token, "key": "plan", "value": "pro"},
        )
        assert response.status_code == 403
    session.expire_all()
    assert session.get(Subscriber, ann.id).attributes == {}


# --- import ---------------------------------------------------------------------------------

SHEET = (
    "E-mail;First name;City;Signed at;Text shown;Notes\n"
    f'ann@example.com;Ann;Oslo;2026-05-14T10:30:00+02:00;"{PAPER}";met at the fair\n'
    "bo@example.com;Bo;Bergen;;;call back\n"
    "not-an-address;Cy;;;;\n"
)


def upload(client, text: str | bytes, name="contacts.csv"):
    token = csrf_of(client, "/admin/subscribers/import")
    data = text.encode("utf-8") if isinstance(text, str) else text
    return client.post(
        "/admin/subscribers/import",
        data={"csrf_token": token, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def the_import(session) -> SubscriberImport:
    session.expire_all()
    return session.scalars(select(SubscriberImport).order_by(SubscriberImport.id.desc())).first()


MAPPING = {
    "column-0": "email",
    "column-1": "name",
    "column-2": "attribute",
    "attr-2": "city",
    "column-3": "consent_at",
    "column-4": "consent_text",
    "column-5": "",
}


def test_a_csv_import_from_upload_to_summary(staff_client, session, work, inbox, app):
    form_id = make_form(session).id
    client = staff_client(Role.MARKETER)
    response = upload(client, SHEET)
    assert response.status_code == 302
    imp = the_import(session)
    assert imp.status is ImportStatus.UPLOADED and imp.delimiter == ";"
    assert imp.columns == ["E-mail", "First name", "City", "Signed at", "Text shown", "Notes"]
    assert imp.mapping[:2] == ["email", "name"]  # guessed; the rest is left to the person
    path = import_jobs.path_of(app.config["MAILER"].instance_path, imp)
    assert path.is_file() and path.stat().st_mode & 0o777 == 0o600

    url = f"/admin/subscribers/import/{imp.id}"
    token = csrf_of(client, url)
    response = client.post(f"{url}/mapping", data={"csrf_token": token, **MAPPING, "topic": "news"})
    assert response.status_code == 302
    page = client.get(url).get_data(as_text=True)
    preview = page.split('id="preview-h"')[1]
    rows = re.findall(r'<tr class="outcome-(\w+)"><td class="num">(\d+)</td>', preview)
    assert rows == [("active", "2"), ("invalid", "3"), ("invalid", "4")]
    assert "choose the form to send it from" in preview  # bo has no evidence and no form
    assert "<strong>E-mail</strong>: not a valid email address" in preview
    assert "met at the fair" not in preview  # an ignored column is not read

    response = client.post(
        f"{url}/mapping",
        data={"csrf_token": token, **MAPPING, "form": str(form_id), "topic": "news"},
    )
    page = client.get(url).get_data(as_text=True)
    rows = re.findall(r'<tr class="outcome-(\w+)"><td class="num">(\d+)</td>', page)
    assert rows == [("active", "2"), ("pending", "3"), ("invalid", "4")]
    assert session.scalar(select(Subscriber)) is None  # a preview writes nothing

    assert client.post(f"{url}/start", data={"csrf_token": token}).status_code == 302
    status = client.get(f"{url}/progress").get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in status and "<progress" in status
    assert "queued" in status

    work()  # the import job, then the confirmation email it queued
    status = client.get(f"{url}/progress").get_data(as_text=True)
    assert "hx-trigger" not in status  # done: the polling stops
    counts = dict(re.findall(r'data-count="(\w+)">([\d,]+)<', status))
    assert counts == {
        "created_active": "1",
        "created_pending": "1",
        "updated": "0",
        "unchanged": "0",
        "skipped": "0",
        "invalid": "1",
    }
    assert re.search(r"<td class=\"num\">4</td><td>E-mail</td><td>not a valid email", status)

    imp = the_import(session)
    assert imp.status is ImportStatus.FINISHED and imp.rows_done == imp.rows_total == 3
    assert not path.exists()  # the file goes once imported
    ann = session.scalar(select(Subscriber).where(Subscriber.email == "ann@example.com"))
    assert ann.status is SubscriberStatus.ACTIVE and ann.attributes == {"city": "Oslo"}
    event = session.scalar(select(ConsentEvent).where(ConsentEvent.subscriber_id == ann.id))
    assert event.type is ConsentEventType.IMPORTED and event.evidence["consent_text"] == PAPER
    assert event.evidence["import_id"] == imp.import_uid and event.actor.startswith("user:")
    bo = session.scalar(select(Subscriber).where(Subscriber.email == "bo@example.com"))
    assert bo.status is SubscriberStatus.PENDING and bo.name == "Bo"
    assert "/confirm/" in link(inbox.only("bo@example.com"), "confirm")
    assert inbox.messages("ann@example.com") == []
    assert chain.verify(session).ok
    (logged,) = accesses(session, "subscribers.import")
    assert logged.details == {"import": imp.id, "form": form_id, "topic": "news"}


def test_an_import_never_downgrades_and_skips_suppressed_addresses(
    staff_client, session, work, inbox
):
    form = make_form(session)
    add_subscriber(session, "ann@example.com", topics=[("news", SubscriptionStatus.ACTIVE)])
    suppressions.add(session, "bo@example.com", SuppressionReason.COMPLAINT)
    session.commit()
    client = staff_client(Role.MARKETER)
    upload(client, "email\nann@example.com\nbo@example.com\n")
    imp = the_import(session)
    url = f"/admin/subscribers/import/{imp.id}"
    token = csrf_of(client, url)
    client.post(
        f"{url}/mapping", data={"csrf_token": token, "column-0": "email", "form": str(form.id)}
    )
    page = client.get(url).get_data(as_text=True)
    assert re.findall(r'<tr class="outcome-(\w+)">', page) == ["update", "skipped"]
    client.post(f"{url}/start", data={"csrf_token": token})
    work()
    report = the_import(session).report
    assert (report["unchanged"], report["skipped"], report["created_pending"]) == (1, 1, 0)
    assert inbox.messages() == []
    ann = session.scalar(select(Subscriber).where(Subscriber.email == "ann@example.com"))
    assert ann.status is SubscriberStatus.ACTIVE


def test_uploads_that_cannot_be_imported_are_refused_with_the_reason(staff_client, session, app):
    client = staff_client(Role.MARKETER)
    cases = [
        ("email\nann@example.com\n".encode("utf-16"), "not UTF-8 text"),
        (b"", "the file is empty"),
        (b"email,name\n", "no rows under it"),
    ]
    for data, message in cases:
        response = upload(client, data)
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
    token = csrf_of(client, "/admin/subscribers/import")
    response = client.post("/admin/subscribers/import", data={"csrf_token": token})
    assert response.status_code == 422 and "choose a CSV file" in response.get_data(as_text=True)
    response = client.post(
        "/admin/subscribers/import",
        data={"csrf_token": "forged", "file": (io.BytesIO(b"email\na@b.example\n"), "a.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert the_import(session) is None
    folder = import_jobs.folder(app.config["MAILER"].instance_path)
    assert not folder.exists() or list(folder.iterdir()) == []  # nothing left behind


def test_a_mapping_must_name_the_email_column_once(staff_client, session):
    client = staff_client(Role.MARKETER)
    upload(client, "Who,Mail,Other mail\nAnn,ann@example.com,a@example.com\n")
    imp = the_import(session)
    url = f"/admin/subscribers/import/{imp.id}"
    token = csrf_of(client, url)
    response = client.post(f"{url}/mapping", data={"csrf_token": token, "column-0": "name"})
    assert response.status_code == 422
    assert "one column must be the email address" in response.get_data(as_text=True)
    response = client.post(
        f"{url}/mapping",
        data={
            "csrf_token": token,
            "column-0": "attribute",
            "attr-0": "",
            "column-1": "email",
            "column-2": "email",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "column 2 is already mapped to this" in page
    assert "an attribute name must be non-empty text" in page
    assert the_import(session).mapping == ["", "email", ""]  # the guess stays until it is valid
    # Starting needs a valid mapping; this one has it, so it starts.
    assert client.post(f"{url}/start", data={"csrf_token": token}).status_code == 302
    assert the_import(session).status is ImportStatus.QUEUED
    # Once started, it cannot be remapped, discarded or queued again.
    response = client.post(f"{url}/mapping", data={"csrf_token": token, "column-1": "email"})
    assert response.status_code == 422 and "has started" in response.get_data(as_text=True)
    client.post(f"{url}/discard", data={"csrf_token": token})
    assert the_import(session).status is ImportStatus.QUEUED


def test_discarding_an_upload_deletes_its_file(staff_client, session, app):
    client = staff_client(Role.MARKETER)
    upload(client, "email\nann@example.com\n")
    imp = the_import(session)
    path = import_jobs.path_of(app.config["MAILER"].instance_path, imp)
    assert path.exists()
    token = csrf_of(client, f"/admin/subscribers/import/{imp.id}")
    response = client.post(
        f"/admin/subscribers/import/{imp.id}/discard", data={"csrf_token": token}
    )
    assert response.status_code == 302
    assert the_import(session).status is ImportStatus.DISCARDED and not path.exists()
    response = client.post(f"/admin/subscribers/import/{imp.id}/start", data={"csrf_token": token})
    assert response.status_code == 302
    assert the_import(session).status is ImportStatus.DISCARDED


def test_uploads_left_unstarted_for_a_day_are_deleted(staff_client, session, app):
    client = staff_client(Role.MARKETER)
    upload(client, "email\nann@example.com\n")
    old = the_import(session)
    old.updated_at = utcnow() - timedelta(days=2)
    session.commit()
    path = import_jobs.path_of(app.config["MAILER"].instance_path, old)
    upload(client, "email\nbo@example.com\n")  # any upload sweeps stale ones
    session.expire_all()
    assert session.get(SubscriberImport, old.id).status is ImportStatus.DISCARDED
    assert not path.exists()


def test_the_import_job_runs_once(staff_client, session, work, app):
    make_form(session)
    client = staff_client(Role.MARKETER)
    upload(client, f'email,consent_at,consent_text\nann@example.com,2026-01-02,"{PAPER}"\n')
    imp = the_import(session)
    url = f"/admin/subscribers/import/{imp.id}"
    token = csrf_of(client, url)
    mapping = {"column-0": "email", "column-1": "consent_at", "column-2": "consent_text"}
    client.post(f"{url}/mapping", data={"csrf_token": token, **mapping, "topic": "news"})
    client.post(f"{url}/start", data={"csrf_token": token})
    client.post(f"{url}/start", data={"csrf_token": token})  # a double click
    assert work() == 1
    with app.app_context():
        assert import_jobs.run(app.extensions["mailer.db"], app.config["MAILER"], imp.id) == (
            "skipped"
        )
    assert the_import(session).report["created_active"] == 1
    assert len(session.scalars(select(ConsentEvent)).all()) == 1


def test_the_preview_names_a_line_that_is_not_text(staff_client, session):
    client = staff_client(Role.MARKETER)
    upload(client, b"email\nann@example.com\nbo@example.com \xff\n")
    imp = the_import(session)
    page = client.get(f"/admin/subscribers/import/{imp.id}").get_data(as_text=True)
    assert "line 3 is not UTF-8 text" in page


def test_a_file_larger_than_the_apps_form_limit_uploads(staff_client, session):
    rows = "".join(f"person{i:05d}@example.com,Person {i}\n" for i in range(8000))
    text = "email,name\n" + rows
    assert len(text) > 4 * 65536  # the app's own request limit is 64 KB
    response = upload(staff_client(Role.MARKETER), text)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    imp = the_import(session)
    assert imp.rows_total == 8000 and imp.size_bytes == len(text)


def test_an_import_whose_worker_fell_silent_can_be_started_again(staff_client, session, work, app):
    make_form(session)
    client = staff_client(Role.MARKETER)
    upload(client, f'email,consent_at,consent_text\nann@example.com,2026-01-02,"{PAPER}"\n')
    imp = the_import(session)
    url = f"/admin/subscribers/import/{imp.id}"
    token = csrf_of(client, url)
    mapping = {"column-0": "email", "column-1": "consent_at", "column-2": "consent_text"}
    client.post(f"{url}/mapping", data={"csrf_token": token, **mapping, "topic": "news"})
    client.post(f"{url}/start", data={"csrf_token": token})
    with app.app_context():
        from mailer.extensions import jobs

        jobs.redis.flushdb()  # the job was lost with Redis
    assert "Start again" not in client.get(url).get_data(as_text=True)  # not yet: too soon

    imp = the_import(session)
    imp.updated_at = utcnow() - import_jobs.LEASE - timedelta(seconds=1)
    session.commit()
    page = client.get(url).get_data(as_text=True)
    assert "Start again" in page and "the worker may have stopped" in page
    assert client.post(f"{url}/start", data={"csrf_token": token}).status_code == 302
    work()
    imp = the_import(session)
    assert imp.status is ImportStatus.FINISHED and imp.report["created_active"] == 1
