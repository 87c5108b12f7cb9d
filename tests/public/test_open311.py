"""Open311 GeoReport v2 over a constructed city in real PostGIS: services, round trips, errors."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.deps import get_public_session, get_session
from api.main import create_app
from gis.dispatch.cases import transition
from gis.dispatch.deadlines import compute_due
from tests.dispatch.test_routing import LIGHTING_OWNER, STREETLIGHT, A, build_city
from tests.support.accounts import headers_for

BASE = "/open311/v2"
A02_CENTRE = (117.0315, 36.6615)  # grid A02, owner 赵网格员 (a person)
A04_CENTRE = (117.0315, 36.6605)
REQUEST_KEYS = {"service_request_id", "status", "status_notes", "service_name", "service_code",
                "description", "agency_responsible", "service_notice", "requested_datetime",
                "updated_datetime", "expected_datetime", "address", "address_id", "zipcode",
                "lat", "long", "media_url"}
SERVICE_KEYS = {"service_code", "service_name", "description", "metadata", "type", "keywords",
                "group"}
REPORTER = {"email": "zhang.san@example.cn", "first_name": "三", "last_name": "张",
            "phone": "13912345678", "device_id": "device-42", "account_id": "acct-7"}


def city_client(test_settings, session, role: str):
    """The app over the constructed test city in this test's transaction, signed in as `role`."""
    build_city(session)
    app = create_app(test_settings)
    app.dependency_overrides[get_session] = lambda: session
    app.dependency_overrides[get_public_session] = lambda: session
    with TestClient(app, headers=headers_for(session, role)) as test_client:
        yield test_client


@pytest.fixture
def client(test_settings, session):
    yield from city_client(test_settings, session, "dispatcher")


def post(client, *, as_json: bool = False, **fields):
    body = {"service_code": "event-0505", "lat": A04_CENTRE[1], "long": A04_CENTRE[0],
            "description": "人行道上占道经营", "address_string": "测试路 8 号门前",
            "media_url": "https://example.cn/photo.jpg", **REPORTER, **fields}
    if as_json:
        return client.post(f"{BASE}/requests.json", json=body)
    return client.post(f"{BASE}/requests.json", data={k: str(v) for k, v in body.items()})


def no_personal_data(response) -> None:
    for value in REPORTER.values():
        assert value not in response.text, f"reporter data {value!r} leaked"


def test_discovery(client):
    body = client.get(f"{BASE}/discovery.json").json()
    (endpoint,) = body["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2")
    assert endpoint["formats"] == ["text/xml", "application/json"]


def test_services_come_from_the_category_tables(client, session):
    services = client.get(f"{BASE}/services.json").json()
    events = session.execute(text("SELECT count(*) FROM event_categories")).scalar_one()
    components = session.execute(text("SELECT count(*) FROM component_classes")).scalar_one()
    assert len(services) == events + components
    by_code = {s["service_code"]: s for s in services}
    for service in services:
        assert set(service) == SERVICE_KEYS
    assert by_code["event-0505"]["service_name"] == "占道经营"
    assert by_code["event-0505"]["group"] == "街面秩序"
    assert by_code["event-0505"]["metadata"] is False
    # Same four digits, two services.
    assert by_code["event-0101"]["service_name"] == "私搭乱建"
    assert by_code["component-0101"]["service_name"] == "上水井盖"
    assert by_code["component-0118"]["metadata"] is True


def test_service_definition(client):
    body = client.get(f"{BASE}/services/component-0118.json").json()
    assert body["service_code"] == "component-0118"
    assert [a["code"] for a in body["attributes"]] == ["component_code"]
    assert client.get(f"{BASE}/services/event-0505.json").json()["attributes"] == []
    missing = client.get(f"{BASE}/services/event-9999.json")
    assert missing.status_code == 404
    assert missing.json() == [{"code": 404, "description":
                               "service_code 'event-9999' is not a service of this city"}]
    bad = client.get(f"{BASE}/services/0505.json")
    assert bad.status_code == 400 and "'0505'" in bad.json()[0]["description"]


def test_round_trip_form_post_then_get(client, session):
    before = dt.datetime.now(dt.UTC)
    response = post(client)
    assert response.status_code == 201, response.text
    no_personal_data(response)
    (created,) = response.json()
    assert set(created) == {"service_request_id", "service_notice", "account_id",
                            "agency_responsible", "expected_datetime"}
    request_id = created["service_request_id"]
    # 05 街面秩序 goes to the enforcement squad by the responsibility rules.
    assert created["agency_responsible"] == "城管执法中队"

    case = session.execute(text(
        "SELECT id, channel, dispatch_due_at, grid_code, category_type, category_code, "
        "reported_at FROM cases WHERE case_no = :n"), {"n": request_id}).mappings().one()
    assert case["channel"] == "open311" and case["grid_code"] == f"{A}04"
    assert case["reported_at"] >= before
    expected = compute_due(session, category_type="event", category_code="0505",
                           urgency="normal", area_type="city", step="handle",
                           start=case["dispatch_due_at"]).due_at
    assert dt.datetime.fromisoformat(created["expected_datetime"]) == expected
    assert expected > case["dispatch_due_at"]

    fetched = client.get(f"{BASE}/requests/{request_id}.json")
    assert fetched.status_code == 200
    no_personal_data(fetched)
    (request,) = fetched.json()
    assert set(request) == REQUEST_KEYS
    assert request["service_request_id"] == request_id
    assert request["status"] == "open" and request["status_notes"] == "信息收集"
    assert request["service_code"] == "event-0505" and request["service_name"] == "占道经营"
    assert request["agency_responsible"] == "城管执法中队"
    assert dt.datetime.fromisoformat(request["expected_datetime"]) == expected
    assert request["address"] == "测试路 8 号门前"
    assert request["media_url"] == "https://example.cn/photo.jpg"
    assert (request["long"], request["lat"]) == pytest.approx(A04_CENTRE)
    # Contact details are stored for the callback, never published.
    stored = session.execute(text("SELECT reporter_phone FROM open311_requests "
                                  "WHERE case_id = :id"), {"id": case["id"]}).scalar_one()
    assert stored == REPORTER["phone"]

    # Once dispatched, the expected date is the handling deadline itself.
    dispatched_at = case["reported_at"] + dt.timedelta(minutes=5)
    transition(session, case["id"], "file", actor="调度员", at=dispatched_at)
    transition(session, case["id"], "dispatch", actor="调度员", at=dispatched_at)
    session.flush()
    (request,) = client.get(f"{BASE}/requests/{request_id}.json").json()
    due_at = session.execute(text("SELECT due_at FROM cases WHERE id = :id"),
                             {"id": case["id"]}).scalar_one()
    assert dt.datetime.fromisoformat(request["expected_datetime"]) == due_at
    assert request["status_notes"] == "任务派遣"


def test_json_post_with_component_attribute_routes_to_its_owner(client):
    response = post(client, as_json=True, service_code="component-0118",
                    attribute={"component_code": STREETLIGHT})
    assert response.status_code == 201, response.text
    (created,) = response.json()
    assert created["agency_responsible"] == LIGHTING_OWNER
    (request,) = client.get(f"{BASE}/requests/{created['service_request_id']}.json").json()
    assert request["agency_responsible"] == LIGHTING_OWNER
    form = post(client, service_code="component-0118",
                **{"attribute[component_code]": STREETLIGHT})
    assert form.status_code == 201 and form.json()[0]["agency_responsible"] == LIGHTING_OWNER


def test_grid_worker_is_named_by_post_not_person(client):
    # 0201 has no rule of its own: the grid owner (赵网格员, a person) is responsible.
    response = post(client, service_code="event-0201", lat=A02_CENTRE[1], long=A02_CENTRE[0])
    assert response.status_code == 201, response.text
    assert "赵网格员" not in response.text
    assert response.json()[0]["agency_responsible"] == f"甲社区网格员（单元网格 {A}02）"


def test_personal_data_typed_into_the_description_is_masked(client, session):
    text_ = ("井盖丢失，联系我 139 1234 5678 或 0531-86123456，邮箱li.si@example.cn，"
             "身份证 37010219900101123X")
    response = post(client, description=text_)
    request_id = response.json()[0]["service_request_id"]
    (request,) = client.get(f"{BASE}/requests/{request_id}.json").json()
    assert request["description"] == (
        "井盖丢失，联系我 [电话已隐藏] 或 [电话已隐藏]，邮箱[邮箱已隐藏]，身份证 [证件号已隐藏]")
    stored = session.execute(text("SELECT description FROM cases WHERE case_no = :n"),
                             {"n": request_id}).scalar_one()
    assert stored == text_  # the dispatcher still has the full text


def test_list_with_status_and_filters(client, session):
    first = post(client).json()[0]["service_request_id"]
    second = post(client, service_code="event-0102").json()[0]["service_request_id"]
    case_id = session.execute(text("SELECT id FROM cases WHERE case_no = :n"),
                              {"n": second}).scalar_one()
    transition(session, case_id, "reject", actor="调度员", note="不属于城管职责",
               at=dt.datetime.now(dt.UTC))
    session.flush()

    def ids(**params):
        response = client.get(f"{BASE}/requests.json", params=params)
        assert response.status_code == 200, response.text
        no_personal_data(response)
        for request in response.json():
            assert set(request) == REQUEST_KEYS
        return [r["service_request_id"] for r in response.json()]

    assert ids() == [second, first]  # newest first, default: last 90 days
    assert ids(status="open") == [first]
    assert ids(status="closed") == [second]
    assert ids(service_code="event-0505") == [first]
    assert ids(service_code="event-0102,event-0505") == [second, first]
    assert ids(service_request_id=f"{first},{second}") == [second, first]
    now = dt.datetime.now(dt.UTC)
    assert ids(start_date=(now - dt.timedelta(hours=1)).isoformat(),
               end_date=(now + dt.timedelta(hours=1)).isoformat()) == [second, first]
    assert ids(start_date=(now - dt.timedelta(days=30)).isoformat(),
               end_date=(now - dt.timedelta(days=20)).isoformat()) == []
    assert ids(page_size=1) == [second]
    assert ids(page_size=1, page=2) == [first]
    (closed,) = client.get(f"{BASE}/requests/{second}.json").json()
    assert closed["status"] == "closed" and closed["status_notes"] == "不予立案"


@pytest.mark.parametrize(("fields", "named"), [
    ({"service_code": "event-9999"}, "event-9999"),
    ({"service_code": "fix-it"}, "fix-it"),
    ({"lat": "abc"}, "abc"),
    ({"lat": "95"}, "95"),
    ({"lat": "30.0", "long": "100.0"}, "outside"),
    # Without lat/long the address_string is geocoded; this one is not in the test city.
    ({"lat": "", "long": ""}, "the address could not be located"),
    ({"lat": "", "long": "", "address_string": ""}, "lat and long, or address_string"),
    ({"long": ""}, "give both lat and long"),
    ({"media_url": "javascript:alert(1)"}, "javascript:alert(1)"),
    ({"attribute[colour]": "red"}, "colour"),
    ({"service_code": "event-0505", "attribute[component_code]": STREETLIGHT}, "component"),
    ({"service_code": "component-0118", "attribute[component_code]": "3701020118999999"},
     "3701020118999999"),
])
def test_bad_posts_are_400_in_open311_format_and_store_nothing(client, session, fields, named):
    count = session.execute(text("SELECT count(*) FROM cases")).scalar_one()
    response = post(client, **fields)
    assert response.status_code == 400, response.text
    (error,) = response.json()
    assert error["code"] == 400 and named in error["description"]
    assert session.execute(text("SELECT count(*) FROM cases")).scalar_one() == count
    assert session.execute(text("SELECT count(*) FROM open311_requests")).scalar_one() == 0


def test_bad_reads_are_open311_errors(client):
    missing = client.get(f"{BASE}/requests/NOPE.json")
    assert missing.status_code == 404
    assert missing.json() == [{"code": 404, "description": "service request 'NOPE' does not exist"}]
    for params, named in (({"status": "pending"}, "pending"),
                          ({"start_date": "yesterday"}, "yesterday"),
                          ({"start_date": "2026-01-01T00:00:00+08:00",
                            "end_date": "2026-06-01T00:00:00+08:00"}, "90 days"),
                          ({"start_date": "2026-01-01T00:00:00"}, "time zone")):
        response = client.get(f"{BASE}/requests.json", params=params)
        assert response.status_code == 400, (params, response.text)
        assert named in response.json()[0]["description"]
    malformed = client.post(f"{BASE}/requests.json", content=b"{not json",
                            headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "JSON" in malformed.json()[0]["description"]


def test_list_agencies_routed_in_one_batch_equal_single_requests(client):
    # A list routes its requests as one batch (a 1,000-request list one by one cost seconds);
    # each agency must be the one the request's own page names.
    posted = [post(client).json()[0]["service_request_id"],
              post(client, as_json=True, service_code="component-0118",
                   attribute={"component_code": STREETLIGHT}).json()[0]["service_request_id"]]
    listed = {r["service_request_id"]: r["agency_responsible"]
              for r in client.get(f"{BASE}/requests.json").json()}
    assert set(posted) <= set(listed)
    for request_id in listed:
        (single,) = client.get(f"{BASE}/requests/{request_id}.json").json()
        assert single["agency_responsible"] == listed[request_id], request_id
    assert [listed[i] for i in posted] == ["城管执法中队", LIGHTING_OWNER]
