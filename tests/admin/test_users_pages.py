"""Users and API keys in the admin: a password or key is shown once and works; roles and
deactivation take effect at once; an admin cannot lock the deployment out of itself."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from mailer.accounts import roster
from mailer.accounts.models import ApiKey, Role, User
from mailer.accounts.users import AccountError
from tests.admin.conftest import PASSWORD, csrf_of, sign_in

USERS = "/admin/users/"
KEYS = "/admin/users/api-keys"


def _post(client, path, data, page=USERS):
    return client.post(path, data={"csrf_token": csrf_of(client, page), **data})


def _user(session, email):
    session.expire_all()
    return session.scalar(select(User).where(User.email == email))


def test_a_generated_password_is_shown_once_and_signs_the_new_user_in(app, session, staff_client):
    admin = staff_client(Role.ADMIN)
    response = _post(admin, USERS, {"email": "Mia@Shop.example", "role": "marketer"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    password = re.search(r'<code id="new-password">([^<]+)</code>', page).group(1)
    assert len(password) >= 12 and "only this once" in page

    listing = admin.get(USERS).get_data(as_text=True)
    assert "mia@shop.example" in listing and password not in listing
    mia = _user(session, "mia@shop.example")
    assert mia.role is Role.MARKETER and password not in mia.password_hash
    client = app.test_client()
    sign_in(client, "mia@shop.example", password)
    assert client.get("/admin/").status_code == 200


def test_a_password_set_by_the_admin_must_be_long_enough_and_the_address_free(staff_client):
    admin = staff_client(Role.ADMIN)
    short = _post(
        admin, USERS, {"email": "ola@shop.example", "role": "compliance", "password": "short"}
    )
    assert short.status_code == 422
    page = short.get_data(as_text=True)
    assert "at least 12" in page and 'value="ola@shop.example"' in page

    ok = _post(
        admin, USERS, {"email": "ola@shop.example", "role": "compliance", "password": PASSWORD}
    )
    assert ok.status_code == 201 and "new-password" not in ok.get_data(as_text=True)
    again = _post(admin, USERS, {"email": "OLA@shop.example", "role": "admin"})
    assert again.status_code == 422
    assert "exists already" in again.get_data(as_text=True)
    bad = _post(admin, USERS, {"email": "not an address", "role": "admin"})
    assert bad.status_code == 422


def test_changing_a_role_applies_to_the_signed_in_user_at_once(app, session, staff_client):
    admin = staff_client(Role.ADMIN)
    marketer = staff_client(Role.MARKETER)
    assert marketer.get("/admin/settings/").status_code == 403
    target = _user(session, "marketer2@staff.example")
    response = _post(admin, f"/admin/users/{target.id}/role", {"role": "admin"})
    assert response.status_code == 302
    assert "is now admin" in admin.get(response.headers["Location"]).get_data(as_text=True)
    assert marketer.get("/admin/settings/").status_code == 200


def test_a_deactivated_user_is_signed_out_everywhere_and_cannot_sign_in(app, session, staff_client):
    admin = staff_client(Role.ADMIN)
    compliance = staff_client(Role.COMPLIANCE)
    target = _user(session, "compliance2@staff.example")
    _post(admin, f"/admin/users/{target.id}/deactivate", {})
    assert _user(session, "compliance2@staff.example").active is False
    response = compliance.get("/admin/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    fresh = app.test_client()
    token = csrf_of(fresh)
    refused = fresh.post(
        "/login",
        data={"csrf_token": token, "email": "compliance2@staff.example", "password": PASSWORD},
    )
    assert refused.status_code == 401

    _post(admin, f"/admin/users/{target.id}/reactivate", {})
    sign_in(app.test_client(), "compliance2@staff.example")


def test_an_admin_cannot_demote_or_deactivate_themself(session, staff_client):
    admin = staff_client(Role.ADMIN)
    me = _user(session, "admin1@staff.example")
    for path, data in (
        (f"/admin/users/{me.id}/role", {"role": "marketer"}),
        (f"/admin/users/{me.id}/deactivate", {}),
    ):
        response = _post(admin, path, data)
        assert response.status_code == 302
        assert "yourself" in admin.get(response.headers["Location"]).get_data(as_text=True)
    me = _user(session, "admin1@staff.example")
    assert me.role is Role.ADMIN and me.active


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(session, staff_client):
    staff_client(Role.ADMIN)
    staff_client(Role.MARKETER)
    only_admin = _user(session, "admin1@staff.example")
    # Whoever asks (another user, or a second admin racing), the last admin stays.
    someone = _user(session, "marketer2@staff.example")
    with pytest.raises(AccountError, match="last active admin"):
        roster.change_role(session, someone.id, only_admin.id, Role.MARKETER)
    with pytest.raises(AccountError, match="last active admin"):
        roster.set_active(session, someone.id, only_admin.id, False)
    assert _user(session, "admin1@staff.example").active


def test_a_bad_role_is_a_clear_error_and_unknown_users_a_404(session, staff_client):
    admin = staff_client(Role.ADMIN)
    staff_client(Role.MARKETER)
    target = _user(session, "marketer2@staff.example")
    response = _post(admin, f"/admin/users/{target.id}/role", {"role": "owner"})
    assert "Choose a role" in admin.get(response.headers["Location"]).get_data(as_text=True)
    assert _post(admin, "/admin/users/424242/role", {"role": "admin"}).status_code == 404
    assert _post(admin, "/admin/users/424242/deactivate", {}).status_code == 404


def test_users_are_listed_by_role(staff_client):
    admin = staff_client(Role.ADMIN)
    staff_client(Role.MARKETER)
    page = admin.get(USERS + "?role=marketer").get_data(as_text=True)
    rows = re.findall(r'<tr id="user-\d+">\s*<td>([^<]+)<', page)
    assert [r.strip() for r in rows] == ["marketer2@staff.example"]


def test_an_api_key_is_shown_once_works_and_stops_when_revoked(app, session, staff_client):
    admin = staff_client(Role.ADMIN)
    response = _post(admin, KEYS, {"name": "CRM sync", "role": "marketer"}, page=KEYS)
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    secret = re.search(r'<code id="new-key">([^<]+)</code>', page).group(1)
    assert secret.startswith("mk_") and "only this once" in page
    assert secret not in admin.get(KEYS).get_data(as_text=True)

    api = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/v1/topics", headers=headers).status_code == 200
    listing = admin.get(KEYS).get_data(as_text=True)
    assert "CRM sync" in listing and secret[:10] in listing and "never" not in listing

    row = session.scalar(select(ApiKey).where(ApiKey.name == "CRM sync"))
    revoked = _post(admin, f"{KEYS}/{row.id}/revoke", {}, page=KEYS)
    assert revoked.status_code == 302
    assert "revoked" in admin.get(KEYS).get_data(as_text=True)
    assert api.get("/api/v1/topics", headers=headers).status_code == 401


def test_an_api_key_needs_a_name(staff_client):
    admin = staff_client(Role.ADMIN)
    response = _post(admin, KEYS, {"name": "  ", "role": "marketer"}, page=KEYS)
    assert response.status_code == 422
    assert "name" in response.get_data(as_text=True).lower()
    assert _post(admin, f"{KEYS}/424242/revoke", {}, page=KEYS).status_code == 404
