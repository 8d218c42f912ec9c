"""Signed links as campaigns hand them out: the fast signer writes exactly the tokens
itsdangerous writes, so the views verify them as they always did, and a click link still
leads only where the campaign pointed."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer

from mailer.tokens import Purpose, TokenError, Tokens
from mailer.tracking import hits
from mailer.tracking.links import TrackingLinks

SECRET = "links-test-secret-ø"
AGES = {p: 3600 for p in Purpose}

_PAYLOADS = st.fixed_dictionaries(
    {
        "d": st.integers(min_value=0, max_value=2**53),
        "u": st.text(max_size=300),
        "i": st.integers(min_value=0, max_value=500),
    }
) | st.fixed_dictionaries({"s": st.integers(0, 10**9), "t": st.lists(st.text(max_size=20))})


@settings(max_examples=300, deadline=None)
@given(payload=_PAYLOADS, purpose=st.sampled_from(list(Purpose)))
def test_tokens_are_what_itsdangerous_writes_and_reads(payload, purpose):
    tokens = Tokens(SECRET, AGES)
    reference = URLSafeTimedSerializer(SECRET, salt=purpose.value)
    before = int(time.time())
    token = tokens.dumps(purpose, payload)
    again = reference.dumps(payload)
    assert reference.loads(token) == payload
    if int(time.time()) == before:
        # Signed in the same second: byte for byte, but that small payloads are never
        # zlib-compressed (itsdangerous marks a compressed payload with a leading ".").
        assert token == again or (again.startswith(".") and not token.startswith("."))


def test_a_token_for_one_purpose_never_verifies_for_another():
    tokens = Tokens(SECRET, AGES)
    token = tokens.dumps(Purpose.OPEN, {"d": 7})
    assert tokens.loads(Purpose.OPEN, token) == {"d": 7}
    for other in (Purpose.CLICK, Purpose.VIEW, Purpose.UNSUBSCRIBE):
        with pytest.raises(TokenError):
            tokens.loads(other, token)
    with pytest.raises(TokenError):
        Tokens("another-secret", AGES).loads(Purpose.OPEN, token)


def test_tokens_expire():
    tokens = Tokens(SECRET, {**AGES, Purpose.OPEN: 1})
    token = tokens.dumps(Purpose.OPEN, {"d": 7})
    time.sleep(2.1)
    with pytest.raises(TokenError) as err:
        tokens.loads(Purpose.OPEN, token)
    assert err.value.expired and err.value.payload == {"d": 7}


def test_click_links_lead_where_the_campaign_pointed_and_nowhere_else():
    tokens = Tokens(SECRET, AGES)
    links = TrackingLinks(tokens, "https://news.shop.example/")
    target = "https://shop.example/offer?src=mail&x=ø"
    for _ in range(3):  # the verdict on the URL is remembered; the result must not change
        url = links.click(42, target, 3)
        assert url.startswith("https://news.shop.example/t/c/")
        found = hits.click_target(tokens, url.rsplit("/", 1)[1])
        assert (found.delivery_id, found.url, found.link_index, found.record) == (
            42,
            target,
            3,
            True,
        )
    assert links.click(42, "mailto:shop@example.org", 4) == "mailto:shop@example.org"
    assert links.click(42, "javascript:alert(1)", 5) == "javascript:alert(1)"
    forged = url.rsplit("/", 1)[1][:-2] + "xx"
    assert hits.click_target(tokens, forged) is None


def test_a_long_url_still_gets_a_token_that_verifies():
    tokens = Tokens(SECRET, AGES)
    links = TrackingLinks(tokens, "https://news.shop.example")
    target = "https://shop.example/p?" + "&".join(f"utm_{i}=newsletter" for i in range(60))
    url = links.click(1, target, 0)
    assert url.startswith("https://news.shop.example/t/c/")
    assert hits.click_target(tokens, url.rsplit("/", 1)[1]).url == target
