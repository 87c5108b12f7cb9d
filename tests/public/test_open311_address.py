"""Open311 POST with `address_string` and no lat/long, on the demo city's doorplates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.deps import get_public_session, get_session
from api.main import create_app
from tests.dispatch.test_case_intake import a_doorplate, cases_count, demo_session  # noqa: F401
from tests.support.accounts import headers_for

BASE = "/open311/v2"


@pytest.fixture
def open311_client(demo_settings, demo_session) -> Iterator[TestClient]:  # noqa: F811
    app = create_app(demo_settings)
    app.dependency_overrides[get_session] = lambda: demo_session
    app.dependency_overrides[get_public_session] = lambda: demo_session
    with TestClient(app, headers=headers_for(demo_session, "dispatcher")) as test_client:
        yield test_client


def test_request_placed_by_address_string(open311_client, demo_session: Session):  # noqa: F811
    address, grid = a_doorplate(demo_session)
    response = open311_client.post(f"{BASE}/requests.json", data={
        "service_code": "event-0102", "address_string": address, "description": "门前有垃圾"})
    assert response.status_code == 201, response.text
    (posted,) = response.json()
    number = posted["service_request_id"]
    assert re.match(r"^LX[0-9]{12}$", number)
    # Staff open the same case by the request id; it keeps the text and how it was matched.
    case = open311_client.get(f"/cases/{number}").json()
    assert (case["case_no"], case["channel"], case["grid_code"]) == (number, "open311", grid)
    assert (case["address"], case["geocode_level"]) == (address, "doorplate")
    assert open311_client.get(f"/cases/{case['id']}").json()["case_no"] == number
    # The published request carries the address and the geocoded point.
    (published,) = open311_client.get(f"{BASE}/requests/{number}.json").json()
    assert published["address"] == address
    assert (published["long"], published["lat"]) == pytest.approx((case["lon"], case["lat"]))


@pytest.mark.parametrize("suffix", ["json", "xml"])
def test_unlocatable_address_is_a_400_in_the_open311_format(open311_client,
                                                           demo_session, suffix):  # noqa: F811
    before = cases_count(demo_session)
    response = open311_client.post(f"{BASE}/requests.{suffix}", data={
        "service_code": "event-0102", "address_string": "火星大道9999号"})
    assert response.status_code == 400, response.text
    if suffix == "json":
        (error,) = response.json()
        description = error["description"]
    else:
        root = ElementTree.fromstring(response.content)
        assert root.tag == "errors"
        description = root.findtext("error/description") or ""
    assert "could not be located" in description and "火星大道9999号" in description
    assert cases_count(demo_session) == before
    assert demo_session.execute(text(
        "SELECT count(*) FROM open311_requests WHERE address_string LIKE '火星%'")
    ).scalar_one() == 0
