"""Signed-in staff for admin page tests: `staff_client(Role.MARKETER)` gives a test client
that went through the real login form (CSRF included), and `csrf_of(client)` the token its
session holds, for posting forms."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from mailer.accounts import users
from mailer.accounts.models import Role

PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_of(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of this client's session, read from a page that has a form."""
    page = client.get(path).get_data(as_text=True)
    match = _TOKEN.search(page)
    assert match, f"no csrf_token on {path}"
    return match.group(1)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD) -> None:
    token = csrf_of(client)
    response = client.post(
        "/login", data={"csrf_token": token, "email": email, "password": password}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


@pytest.fixture
def staff_client(app, session) -> Callable[[Role], FlaskClient]:
    """A new client signed in as a new user of the given role."""
    made = 0

    def make(role: Role) -> FlaskClient:
        nonlocal made
        made += 1
        email = f"{role.value}{made}@staff.example"
        users.create_user(session, email, PASSWORD, role)
        client = app.test_client()
        sign_in(client, email)
        return client

    return make
