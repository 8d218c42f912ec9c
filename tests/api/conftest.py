"""API keys per role, and a client that sends them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailer.accounts.models import Role
from mailer.accounts.users import create_api_key


@pytest.fixture
def make_key(session) -> Callable[..., dict[str, str]]:
    """Headers carrying a fresh key of `role`."""

    def build(role: Role, name: str = "") -> dict[str, str]:
        _, secret = create_api_key(session, role, name or f"{role.value} key")
        return {"Authorization": f"Bearer {secret}"}

    return build


@pytest.fixture
def marketer(make_key) -> dict[str, str]:
    return make_key(Role.MARKETER, "CRM sync")


@pytest.fixture
def compliance(make_key) -> dict[str, str]:
    return make_key(Role.COMPLIANCE, "DPO desk")


@pytest.fixture
def admin(make_key) -> dict[str, str]:
    return make_key(Role.ADMIN, "ops")
