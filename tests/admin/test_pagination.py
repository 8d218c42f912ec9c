"""Every admin list reads `?page=` the same way: anything that is not a page number is the
first page, never an error page."""

from __future__ import annotations

import pytest

from mailer.accounts.models import Role

LISTS = [
    "/admin/campaigns/",
    "/admin/templates/",
    "/admin/subscribers/",
    "/admin/topics/",
    "/admin/subscribers/import",
    "/admin/topics/forms/",
    "/admin/segments/",
    "/admin/settings/history",
    "/admin/compliance/exports",
    "/admin/compliance/audit-log",
]


@pytest.mark.parametrize("page", ["²", "٣", "-1", "0", "1e3", "9" * 5000, "abc", ""])
def test_a_page_that_is_not_a_page_number_shows_the_first_page(staff_client, page):
    admin = staff_client(Role.ADMIN)
    for path in LISTS:
        first = admin.get(path)
        assert first.status_code == 200, path
        odd = admin.get(path, query_string={"page": page})
        assert odd.status_code == 200, (path, page)
