"""Open311 GeoReport v2 in both formats: the `georeport` client against a live server, the XML
element names of the spec's examples, errors, comma lists, the default window and page size,
and the service_request_id at /cases/{id} for staff.
"""

from __future__ import annotations

import datetime as dt
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from georeport import GeoReport
from sqlalchemy import text

from api.deps import get_public_session, get_session
from api.main import create_app
from gis.dispatch.cases import create_case
from tests.public.test_open311 import BASE, REPORTER, REQUEST_KEYS, SERVICE_KEYS, post
from tests.support.accounts import headers_for
from tests.support.browser import serve

# The spec's examples, element by element and in order (wiki.open311.org/GeoReport_v2).
REQUEST_ELEMENTS = ["service_request_id", "status", "status_notes", "service_name",
                    "service_code", "description", "agency_responsible", "service_notice",
                    "requested_datetime", "updated_datetime", "expected_datetime", "address",
                    "address_id", "zipcode", "lat", "long", "media_url"]
SERVICE_ELEMENTS = ["service_code", "service_name", "description", "metadata", "type",
                    "keywords", "group"]
ATTRIBUTE_ELEMENTS = ["variable", "code", "datatype", "required", "datatype_description",
                      "order", "description", "values"]
ENDPOINT_ELEMENTS = ["specification", "url", "changeset", "type", "formats"]
PERSONAL = "井盖丢失，联系 139 1234 5678，邮箱 li.si@example.cn <b>&amp;</b>"
MASKED = "井盖丢失，联系 [电话已隐藏]，邮箱 [邮箱已隐藏] <b>&amp;</b>"


@pytest.fixture
def app(test_settings, session):
    from tests.dispatch.test_routing import build_city

    build_city(session)
    application = create_app(test_settings)
    application.dependency_overrides[get_session] = lambda: session
    application.dependency_overrides[get_public_session] = lambda: session
    return application


@pytest.fixture
def client(app, session) -> Iterator[TestClient]:
    with TestClient(app, headers=headers_for(session, "dispatcher")) as test_client:
        yield test_client


@pytest.fixture
def anonymous(app) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def xml(response) -> ET.Element:
    assert response.headers["content-type"] == "text/xml; charset=utf-8", response.text
    return ET.fromstring(response.content)


def children(element: ET.Element) -> list[str]:
    return [child.tag for child in element]


def as_xml_text(value: Any) -> str | None:
    """What a JSON value reads as in the XML (xmltodict: an empty element is None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_georeport_client_reads_every_endpoint_in_both_formats(app, client) -> None:
    ids = [post(client, description=PERSONAL).json()[0]["service_request_id"],
           post(client, service_code="event-0102").json()[0]["service_request_id"]]
    with serve(app) as base:
        os.environ.setdefault("NO_PROXY", "127.0.0.1")
        clients = {fmt: GeoReport(f"{base}{BASE}", output_format=fmt)
                   for fmt in ("json", "xml")}
        services = {fmt: c.get_service_list() for fmt, c in clients.items()}
        definitions = {fmt: c.get_service_definition("component-0118")
                       for fmt, c in clients.items()}
        listed = {fmt: c.get_service_requests(status="open,closed")
                  for fmt, c in clients.items()}
        one = {fmt: c.get_service_request(ids[0]) for fmt, c in clients.items()}
        both = {fmt: c.get_service_requests(service_request_id=",".join(ids),
                                            service_code="event-0505,event-0102")
                for fmt, c in clients.items()}

    assert len(services["json"]) > 20
    assert [set(s) for s in services["xml"]] == [SERVICE_KEYS] * len(services["json"])
    assert services["xml"] == [{k: as_xml_text(v) for k, v in s.items()}
                               for s in services["json"]]
    attribute = definitions["xml"]["attributes"]["attribute"]
    assert attribute["code"] == definitions["json"]["attributes"][0]["code"] == "component_code"
    assert attribute["required"] == "false" and attribute["values"] is None
    assert [r["service_request_id"] for r in listed["json"]] == ids[::-1]
    for fmt in ("xml", "json"):
        assert [r["service_request_id"] for r in both[fmt]] == ids[::-1]
    for xml_request, json_request in zip(listed["xml"], listed["json"], strict=True):
        assert set(xml_request) == REQUEST_KEYS
        assert xml_request == {k: as_xml_text(v) for k, v in json_request.items()}
    # Contact data masked alike in both formats, markup in a description is only text.
    assert one["json"]["description"] == MASKED
    assert one["xml"]["description"] == MASKED
    assert one["xml"] == {k: as_xml_text(v) for k, v in one["json"].items()}


def test_xml_element_names_are_the_specs(client, anonymous) -> None:
    request_id = post(client).json()[0]["service_request_id"]

    discovery = xml(anonymous.get(f"{BASE}/discovery.xml"))
    assert discovery.tag == "discovery"
    assert children(discovery) == ["changeset", "contact", "key_service", "endpoints"]
    (endpoint,) = discovery.find("endpoints")
    assert endpoint.tag == "endpoint" and children(endpoint) == ENDPOINT_ELEMENTS
    assert [f.text for f in endpoint.find("formats")] == ["text/xml", "application/json"]
    assert [f.tag for f in endpoint.find("formats")] == ["format", "format"]

    services = xml(anonymous.get(f"{BASE}/services.xml"))
    assert services.tag == "services" and set(children(services)) == {"service"}
    assert all(children(s) == SERVICE_ELEMENTS for s in services)
    assert {s.findtext("metadata") for s in services} == {"true", "false"}

    definition = xml(anonymous.get(f"{BASE}/services/component-0118.xml"))
    assert definition.tag == "service_definition"
    assert children(definition) == ["service_code", "attributes"]
    (attribute,) = definition.find("attributes")
    assert attribute.tag == "attribute" and children(attribute) == ATTRIBUTE_ELEMENTS
    assert xml(anonymous.get(f"{BASE}/services/event-0505.xml")).find("attributes") is not None

    for url in (f"{BASE}/requests.xml", f"{BASE}/requests/{request_id}.xml"):
        listed = xml(anonymous.get(url))
        assert listed.tag == "service_requests"
        (request,) = listed
        assert request.tag == "request" and children(request) == REQUEST_ELEMENTS
        assert request.findtext("service_request_id") == request_id
        assert request.find("address_id").text is None  # null: an empty element
        for value in REPORTER.values():
            assert value not in ET.tostring(listed, encoding="unicode")


def test_xml_post_round_trip(client, session) -> None:
    body = {"service_code": "event-0505", "lat": "36.6605", "long": "117.0315",
            "description": "占道经营\x01（客户端带来的控制字符）", **REPORTER}
    response = client.post(f"{BASE}/requests.xml", data=body)
    assert response.status_code == 201, response.text
    created = xml(response)
    assert created.tag == "service_requests"
    (request,) = created
    assert children(request) == ["service_request_id", "service_notice", "account_id",
                                 "agency_responsible", "expected_datetime"]
    request_id = request.findtext("service_request_id")
    assert session.execute(text("SELECT channel FROM cases WHERE case_no = :n"),
                           {"n": request_id}).scalar_one() == "open311"
    for value in REPORTER.values():
        assert value not in response.text
    # XML 1.0 cannot carry U+0001: it reads as U+FFFD, the document still parses.
    (fetched,) = xml(client.get(f"{BASE}/requests/{request_id}.xml"))
    assert fetched.findtext("description") == "占道经营\ufffd（客户端带来的控制字符）"


ERROR_CASES = [
    ("GET", "/services/event-9999", 404, "event-9999"),
    ("GET", "/services/0505", 400, "'0505'"),
    ("GET", "/requests/NOPE", 404, "'NOPE'"),
    ("GET", "/requests?status=open,pending", 400, "'pending'"),
    ("GET", "/requests?page_size=1001", 400, "1000"),
    ("GET", "/requests?start_date=2026-01-01T00:00:00", 400, "time zone"),
    ("POST", "/requests", 401, "api_key"),
    ("GET", "/nothing", 404, "/open311/v2/discovery.json"),
    ("DELETE", "/requests", 405, "DELETE"),
]


def test_errors_are_the_specs_in_both_formats(anonymous) -> None:
    for (method, path, status, named), fmt in [(case, fmt) for case in ERROR_CASES
                                               for fmt in ("json", "xml")]:
        route, _, query = path.partition("?")
        url = f"{BASE}{route}.{fmt}" + (f"?{query}" if query else "")
        response = anonymous.request(
            method, url, data={"service_code": "event-0505"} if method == "POST" else None)
        assert response.status_code == status, (url, response.text)
        if fmt == "json":
            (error,) = response.json()
            assert set(error) == {"code", "description"}
            code, description = error["code"], error["description"]
        else:
            errors = xml(response)
            assert errors.tag == "errors"
            (error,) = errors
            assert error.tag == "error" and children(error) == ["code", "description"]
            code, description = int(error.findtext("code")), error.findtext("description")
        assert code == status and named in description, (url, description)


def test_input_guard_refuses_in_the_format_asked_for(anonymous) -> None:
    errors = xml(anonymous.get(f"{BASE}/requests/a%00b.xml"))
    assert errors.findtext("error/code") == "400" and "NUL" in errors.findtext("error/description")
    assert anonymous.get(f"{BASE}/requests/a%00b.json").json()[0]["code"] == 400


def test_unknown_routes_anywhere_under_open311(anonymous) -> None:
    for url in ("/open311", "/open311/v3/services.json", "/open311/v2/services"):
        response = anonymous.get(url)
        assert response.status_code == 404
        assert response.json()[0]["code"] == 404
    errors = xml(anonymous.get("/open311/v1/requests.xml"))
    assert errors.findtext("error/code") == "404"
    # Elsewhere the usual shape stays.
    elsewhere = anonymous.get("/no-such-page").json()
    assert elsewhere["detail"] == "Not Found" and "message_zh" in elsewhere


def test_comma_lists_default_window_and_page_size(client, session) -> None:
    first = post(client).json()[0]["service_request_id"]
    second = post(client, service_code="event-0102").json()[0]["service_request_id"]
    old = create_case(session, category_type="event", category_code="0505", channel="open311",
                      x=117.0315, y=36.6605, reported_at=dt.datetime.now(dt.UTC)
                      - dt.timedelta(days=100), actor="测试").case_no
    session.execute(text("UPDATE cases SET status = 'rejected' WHERE case_no = :n"),
                    {"n": second})
    session.flush()

    def ids(fmt: str = "json", **params: str) -> list[str]:
        response = client.get(f"{BASE}/requests.{fmt}", params=params)
        assert response.status_code == 200, response.text
        if fmt == "xml":
            return [r.findtext("service_request_id") for r in xml(response)]
        return [r["service_request_id"] for r in response.json()]

    for fmt in ("json", "xml"):
        assert ids(fmt) == [second, first]  # the last 90 days: the 100-day-old case is not
        assert ids(fmt, status="open,closed") == [second, first]
        assert ids(fmt, status="closed") == [second]
        assert ids(fmt, status="open, open") == [first]
        assert ids(fmt, service_code="event-0102,event-0505") == [second, first]
        start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=101)).isoformat()
        assert ids(fmt, start_date=start) == [old]  # 90 days from start_date
        assert ids(fmt, page_size="1000") == [second, first]
    spec = client.get("/openapi.json").json()
    parameters = {p["name"]: p["schema"] for p in
                  spec["paths"][f"{BASE}/requests.xml"]["get"]["parameters"]}
    assert parameters["page_size"]["default"] == 1000
    assert parameters["page_size"]["maximum"] == 1000


def test_service_request_id_resolves_at_cases_for_staff(client, anonymous) -> None:
    request_id = post(client).json()[0]["service_request_id"]
    by_number = client.get(f"/cases/{request_id}")
    assert by_number.status_code == 200, by_number.text
    case = by_number.json()
    assert case["case_no"] == request_id and case["channel"] == "open311"
    assert client.get(f"/cases/{case['id']}").json()["case_no"] == request_id
    missing = client.get("/cases/NOPE-1")
    assert missing.status_code == 404 and "'NOPE-1'" in missing.json()["detail"]
    assert anonymous.get(f"/cases/{request_id}").status_code == 401

