"""Open311 paging past any real table is a GeoReport 400, not a database error.

`page=99999999999999` (or 2**63 - 1) multiplied into an OFFSET PostgreSQL refuses ("bigint
out of range"), answered as a 422 in citygrid's own JSON shape instead of GeoReport's error
list; the offset is bounded like /ogc's (MAX_OFFSET_ROWS) before the database is asked.
"""

from __future__ import annotations

import pytest

from tests.public.test_open311 import BASE, client  # noqa: F401


@pytest.mark.parametrize("params", [
    {"page": "99999999999999"},
    {"page": str(2**63 - 1)},
    {"page": "10000002", "page_size": "1"},
])
def test_absurd_pages_are_open311_400s(client, params):  # noqa: F811
    for fmt in ("json", "xml"):
        response = client.get(f"{BASE}/requests.{fmt}", params=params)
        assert response.status_code == 400, (params, response.text)
        if fmt == "json":
            (error,) = response.json()
            assert error["code"] == 400 and "page" in error["description"]
        else:
            assert "<errors>" in response.text


def test_the_last_allowed_page_is_an_empty_list(client):  # noqa: F811
    response = client.get(f"{BASE}/requests.json", params={"page": "10001"})
    assert response.status_code == 200 and response.json() == []
