"""Deliverability as a real judge sees it: SpamAssassin scores the mail we actually send.

A confirmation email (a real sign-up through the JSON endpoint) and a campaign email built from
a gallery-style MJML newsletter (images, two columns, a button, social links, a footer with the
postal address), both rendered by the product, DKIM-signed with a 2048-bit key and taken from a
real SMTP server on loopback byte for byte, are scored by `spamassassin --local` (local rules
only: no DNS, no network). Each must stay below 2.0 points, well under the usual 5.0 threshold,
so that a receiver's network rules (which we cannot run here) have room. The reports are kept
under test-artifacts/spamassassin/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rq import SimpleWorker

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key
from mailer.extensions import jobs
from tests import signups
from tests.campaigns.conftest import make_audience, make_campaign
from tests.factories import make_form
from tests.reliability import spamassassin

LIMIT = 2.0
DOMAIN = "nordlys-books.example"
NEWSLETTER = (Path(__file__).parent / "templates" / "newsletter.mjml").read_text()

pytestmark = pytest.mark.skipif(
    spamassassin.binary() is None,
    reason="spamassassin is not installed (scripts/test installs Debian's spamassassin)",
)


@pytest.fixture
def sending_app(make_app, make_settings, smtp_server, tmp_path):
    """The app as a real sender configures it: an https base URL, its own From domain, DKIM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "dkim.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return make_app(
        make_settings(
            MAILER_SMTP_URL=smtp_server.url,
            MAILER_BASE_URL=f"https://news.{DOMAIN}",
            MAILER_MAIL_FROM=f"Nordlys Books <news@{DOMAIN}>",
            MAILER_DKIM_DOMAIN=DOMAIN,
            MAILER_DKIM_SELECTOR="mail2026",
            MAILER_DKIM_PRIVATE_KEY=str(pem),
        )
    )


def _work(app) -> None:
    with app.app_context():
        SimpleWorker(jobs.queues, connection=jobs.redis).work(burst=True, with_scheduler=False)
        failed = [j for q in jobs.queues for j in q.failed_job_registry.get_job_ids()]
    assert not failed, f"jobs failed: {failed}"


def _verdict(received, name: str, recorder) -> spamassassin.Verdict:
    verdict = spamassassin.judge(received.data, name)
    recorder.inputs_tried += 1
    recorder.recipients_checked += 1
    recorder.notes.append(f"spamassassin {name}: {verdict.score:.1f} points ({verdict.saved_to})")
    return verdict


def test_confirmation_email_scores_below_two(sending_app, smtp_server, recorder):
    session = sending_app.extensions["mailer.db"]()
    make_form(session, origins=(f"https://www.{DOMAIN}",))
    session.commit()
    response = sending_app.test_client().post(
        "/subscribe/news",
        json={"email": "ingrid.solberg@example.org", "name": "Ingrid", "consent": True},
        headers={"Origin": f"https://www.{DOMAIN}"},
    )
    assert response.status_code == 202, response.get_json()
    signups.drain(sending_app)
    _work(sending_app)
    (received,) = smtp_server.received
    message = received.message()
    assert message["Subject"] == "Please confirm your subscription"
    assert "DKIM-Signature" in message

    verdict = _verdict(received, "confirmation", recorder)
    assert verdict.score < LIMIT, (
        f"the confirmation email scores {verdict.score} ({verdict.scoring()}); "
        f"report: {verdict.saved_to}"
    )
    session.close()


def test_gallery_style_campaign_email_scores_below_two(sending_app, smtp_server, recorder):
    session = sending_app.extensions["mailer.db"]()
    topic, _ = make_audience(session, 1, topic_slug="books", prefix="ingrid")
    campaign = make_campaign(
        session,
        topic,
        mjml=NEWSLETTER,
        name="Autumn reading list",
        subject="The autumn reading list, {{ subscriber.first_name }}",
        preheader="Six new novels, a reading on the 14th and the café's favourite cookbook.",
        reply_to=f"hello@{DOMAIN}",
    )
    campaign.from_name, campaign.from_email = "Nordlys Books", f"news@{DOMAIN}"
    session.commit()
    _, key = create_api_key(session, Role.MARKETER, "deliverability")
    sent = sending_app.test_client().post(
        f"/api/v1/campaigns/{campaign.id}/send", headers={"Authorization": f"Bearer {key}"}
    )
    assert sent.status_code == 202, sent.get_json()
    _work(sending_app)
    (received,) = smtp_server.received
    message = received.message()
    assert message["Subject"] == "The autumn reading list, Reader0"
    assert "DKIM-Signature" in message and message["List-Unsubscribe-Post"]

    verdict = _verdict(received, "campaign-newsletter", recorder)
    assert verdict.score < LIMIT, (
        f"the campaign email scores {verdict.score} ({verdict.scoring()}); "
        f"report: {verdict.saved_to}"
    )
    session.close()
