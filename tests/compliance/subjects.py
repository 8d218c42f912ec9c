"""A subscribed person, as the compliance tests need one."""

from __future__ import annotations

from tests import signups
from tests.factories import make_form
from tests.inbox import link

ORIGIN = {"Origin": "https://shop.example"}
EMAIL = "erin.eraseme@example.com"


def subscribed(client, session, work, inbox, email=EMAIL):
    """Sign up on a form with a welcome email and confirm, through the real pages and worker."""
    make_form(session, welcome=True)
    client.post(
        "/subscribe/news",
        json={"email": email, "consent": True, "name": "Erin"},
        headers={**ORIGIN, "User-Agent": "ErinBrowser/1.0"},
    )
    signups.drain(client.application)
    work()
    path = link(inbox.messages(email)[-1], "confirm").removeprefix("http://localhost")
    page = client.get(path).get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post(path, data={"csrf_token": token}, headers={"User-Agent": "ErinBrowser/1.0"})
    work()
