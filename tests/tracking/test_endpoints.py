"""The open pixel and the click redirect as a mail client and a browser meet them."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from urllib.parse import quote

from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from mailer.extensions import jobs
from mailer.tokens import Purpose, Tokens
from mailer.tracking import stream
from mailer.tracking.links import TrackingLinks
from tests.tracking.conftest import path_of

GIF_HEADER = b"GIF89a\x01\x00\x01\x00"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"


def _entries(app) -> list[dict[str, str]]:
    with app.app_context():
        raw = jobs.redis.xrange(stream.STREAM)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in raw]


def test_pixel_is_a_43_byte_gif_that_is_never_cached(app, client, factory, links):
    sent = factory.sent()
    response = client.get(path_of(links.open_pixel(sent.delivery.id)))
    assert response.status_code == 200
    assert response.data.startswith(GIF_HEADER) and len(response.data) == 43
    assert response.headers["Content-Type"] == "image/gif"
    assert response.headers["Content-Length"] == "43"
    assert "no-store" in response.headers["Cache-Control"]
    assert "no-cache" in response.headers["Cache-Control"]
    assert response.headers["Pragma"] == "no-cache"
    assert "Set-Cookie" not in response.headers
    assert [e["k"] for e in _entries(app)] == ["open"]


def test_forged_or_garbled_pixel_token_gets_the_same_gif_and_records_nothing(
    app, client, factory, settings
):
    sent = factory.sent()
    forged = Tokens("someone-elses-key", {Purpose.OPEN: None}).dumps(
        Purpose.OPEN, {"d": sent.delivery.id}
    )
    genuine = client.get(f"/t/o/{Tokens(settings.secret_key, {}).dumps(Purpose.OPEN, {'d': 1})}")
    for token in (forged, "garbage", "x" * 5000, forged[:-3] + "abc"):
        response = client.get(f"/t/o/{token}")
        assert response.status_code == 200 and response.data == genuine.data
        assert response.headers["Content-Type"] == "image/gif"
    assert len(_entries(app)) == 1  # only the genuine one


def test_head_on_the_pixel_or_a_link_records_nothing(app, client, factory, links):
    sent = factory.sent()
    assert client.head(path_of(links.open_pixel(sent.delivery.id))).status_code == 200
    click = client.head(path_of(links.click(sent.delivery.id, "https://example.org/a", 0)))
    assert click.status_code == 302
    assert _entries(app) == []


def test_click_redirects_to_the_signed_url_and_records_it(app, client, factory, links):
    sent = factory.sent()
    target = "https://shop.example.org/spring?utm_source=news&q=caf%C3%A9#top"
    response = client.get(
        path_of(links.click(sent.delivery.id, target, 3)), headers={"User-Agent": BROWSER}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == target
    assert response.headers["Referrer-Policy"] == "no-referrer"
    [entry] = _entries(app)
    assert entry["k"] == "click" and entry["u"] == target and entry["i"] == "3"
    assert entry["d"] == str(sent.delivery.id) and entry["r"] == ""


def test_a_long_link_still_redirects(client, factory, links):
    """Click tokens carry the URL, so they may be longer than other tokens (up to 4 KB)."""
    sent = factory.sent()
    target = "https://shop.example.org/item?ref=" + secrets.token_urlsafe(2000)
    url = links.click(sent.delivery.id, target, 0)
    assert url.startswith("http://localhost/t/c/")
    assert len(url.rsplit("/", 1)[1]) > 2048
    response = client.get(path_of(url))
    assert response.status_code == 302 and response.headers["Location"] == target


def test_tampered_click_token_is_a_404_without_any_redirect(app, client, factory, links):
    sent = factory.sent()
    url = links.click(sent.delivery.id, "https://example.org/", 0)
    token = url.rsplit("/", 1)[1]
    for bad in (token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), "nonsense", "x" * 5000):
        response = client.get(f"/t/c/{bad}")
        assert response.status_code == 404
        assert "Location" not in response.headers
    assert _entries(app) == []


def test_a_link_to_another_host_signed_with_the_wrong_key_is_refused(client, factory):
    """The open-redirect attempt: a token naming evil.example, made without our key."""
    sent = factory.sent()
    forged = TrackingLinks(Tokens("guessed-key", {}), "http://localhost").click(
        sent.delivery.id, "https://evil.example/phish", 0
    )
    response = client.get(path_of(forged))
    assert response.status_code == 404 and "Location" not in response.headers
    # Nor can a target be smuggled next to a real token.
    response = client.get("/t/c/x?u=" + quote("https://evil.example/"))
    assert response.status_code == 404 and "Location" not in response.headers


def test_only_http_and_https_targets_redirect_even_when_signed(client, settings, factory):
    """Defence in depth: even a token we signed never sends a browser to javascript: etc."""
    sent = factory.sent()
    tokens = Tokens(settings.secret_key, {Purpose.CLICK: None})
    for target in (
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/",
        "https://good.example/\r\nSet-Cookie: x=1",
        "ftp://files.example/",
    ):
        token = tokens.dumps(Purpose.CLICK, {"d": sent.delivery.id, "u": target, "i": 0})
        response = client.get(f"/t/c/{token}")
        assert response.status_code == 404, target
        assert "Location" not in response.headers


def test_links_leave_what_they_cannot_track_as_it_is(links):
    assert links.click(1, "mailto:ann@example.com", 0) == "mailto:ann@example.com"
    assert links.click(1, "#top", 1) == "#top"
    huge = "https://example.org/?sig=" + secrets.token_urlsafe(4000)  # incompressible
    assert links.click(1, huge, 2) == huge


def test_expired_click_still_redirects_but_records_nothing(app, client, factory, settings):
    sent = factory.sent(sent_ago=timedelta(days=500))
    target = "https://example.org/old-issue"
    # Signed 401 days ago, past MAILER_TRACKING_MAX_AGE (400 days).
    token = _backdated(
        settings.secret_key, Purpose.CLICK, {"d": sent.delivery.id, "u": target, "i": 0}, 401
    )
    response = client.get(f"/t/c/{token}")
    assert response.status_code == 302 and response.headers["Location"] == target
    pixel = _backdated(settings.secret_key, Purpose.OPEN, {"d": sent.delivery.id}, 401)
    assert client.get(f"/t/o/{pixel}").status_code == 200
    assert _entries(app) == []


def test_the_ip_is_never_stored_and_the_user_agent_is_clipped(app, client, factory, links):
    sent = factory.sent()
    long_agent = BROWSER + " " + "x" * 500
    client.get(
        path_of(links.open_pixel(sent.delivery.id)),
        headers={"User-Agent": long_agent},
        environ_base={"REMOTE_ADDR": "203.0.113.77"},
    )
    [entry] = _entries(app)
    assert "203.0.113" not in " ".join(entry.values())
    assert entry["a"] == long_agent[:200]


def test_apple_proxy_is_recognised_at_the_hit(app, client, factory, links):
    sent = factory.sent()
    client.get(
        path_of(links.open_pixel(sent.delivery.id)),
        headers={"User-Agent": "Mozilla/5.0"},
        environ_base={"REMOTE_ADDR": "17.58.63.1"},
    )
    [entry] = _entries(app)
    assert entry["r"] == "apple_mpp"


def _backdated(secret: str, purpose: Purpose, payload: dict, days: int) -> str:
    """A genuine token, signed `days` ago."""

    class Past(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - days * 24 * 3600

    return URLSafeTimedSerializer(secret, salt=purpose.value, signer=Past).dumps(payload)
