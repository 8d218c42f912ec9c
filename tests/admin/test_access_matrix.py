"""Every admin route, every role: anonymous visitors are sent to the login page, staff of
another role get a 403, staff of the right role get the page (or a 404 for an id that does not
exist), and nothing answers with a 5xx.

The roles come from the views themselves (`roles_required` records them), so a new page is
covered as soon as it exists; the table below pins what each area must admit, so a page
declared with the wrong roles fails here too.
"""

from __future__ import annotations

import pytest

from mailer.accounts.models import Role
from tests.admin.conftest import csrf_of

A, M, C = Role.ADMIN, Role.MARKETER, Role.COMPLIANCE
# What each admin area admits (by blueprint); a route may narrow it (e.g. admin-only actions).
AREAS = {
    "admin": {A, M, C},
    "outbox": {A, M, C},
    "admin_subscribers": {A, M, C},
    "admin_topics": {A, M},
    "admin_segments": {A, M},
    "admin_templates": {A, M},
    "admin_campaigns": {A, M},
    "admin_compliance": {A, C},
    "admin_settings": {A},
    "admin_users": {A},
    "admin_account": {A, M, C},
}
SAMPLE = {"int": "999999", "string": "nothing-here", "path": "nothing-here", "default": "x"}


def _admin_routes(app):
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        roles = getattr(view, "admin_roles", None)
        if roles is None:
            continue
        args = {
            name: SAMPLE.get(type(conv).__name__.replace("Converter", "").lower(), "1")
            for name, conv in rule._converters.items()
        }
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method, args, roles


def _url(app, rule, args):
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **args)


def test_every_admin_route_declares_roles_within_its_area(app):
    seen = 0
    for rule, _method, _args, roles in _admin_routes(app):
        blueprint = rule.endpoint.split(".")[0]
        assert blueprint in AREAS, f"{rule.endpoint}: add its area to the table"
        assert set(roles) <= AREAS[blueprint], f"{rule.rule} admits {roles}"
        seen += 1
    assert seen >= 1


def test_anonymous_visitors_are_sent_to_the_login_page(app, client):
    for rule, method, args, _roles in _admin_routes(app):
        url = _url(app, rule, args)
        token = csrf_of(client)
        data = {"csrf_token": token} if method != "GET" else None
        response = client.open(url, method=method, data=data)
        assert response.status_code == 302, (method, url, response.status_code)
        assert response.headers["Location"].startswith("/login"), (method, url)


@pytest.mark.parametrize("role", [A, M, C])
def test_each_role_gets_what_it_may_and_a_403_for_the_rest(app, staff_client, role):
    client = staff_client(role)
    token = csrf_of(client)
    for rule, method, args, roles in _admin_routes(app):
        url = _url(app, rule, args)
        data = {"csrf_token": token} if method != "GET" else None
        response = client.open(url, method=method, data=data)
        where = f"{role.value} {method} {url}"
        assert response.status_code < 500, f"{where}: {response.status_code}"
        if role in roles:
            assert response.status_code not in (401, 403), where
            assert not response.headers.get("Location", "").startswith("/login"), where
        else:
            assert response.status_code == 403, f"{where}: {response.status_code}"
