"""Open311 GeoReport v2 over citygrid's cases: services, posting and reading service requests.

* **Services** are the rows of event_categories and component_classes. An event code and a
  component class can share four digits (0101 is 私搭乱建 and 上水井盖), so a service_code
  carries its type: `event-0101`, `component-0118`. Component services take one optional
  attribute, `component_code` (the 16-digit code of the light or cover).
* **Posting** routes the point with the dispatcher's routing (grid, owner of the day,
  responsible unit) and stores an ordinary case (channel 'open311'); what GeoReport carries
  beyond a case goes to `open311_requests`. service_request_id is the case number. A request
  with `address_string` and no lat/long is geocoded (gis.dispatch.case_intake); one that cannot
  be located with confidence is refused with 400, nothing stored.
* **agency_responsible** is the routing's responsible unit for the case's place, category and
  time, recomputed on every read so it follows the same rules the dispatcher sees. When that
  unit is a grid owner who is a person (网格员), the agency is named by the community and unit
  grid instead of the person's name.
* **expected_datetime** is the deadline for handling the case: the handling deadline once the
  case is dispatched (extensions included), and before that the handling time limit counted
  from the dispatch deadline, i.e. the latest date an on-time case is fixed.
* The reporter's contact details (email, name, phone, device and account ids) are stored for
  the callback only and never selected by anything in this module. Reporters often type their
  phone number into the description or the address too, so published descriptions and
  addresses have phone numbers, e-mail addresses and ID-card numbers masked, whatever their
  spacing, full-width digits or +86 prefix (the case keeps the full text for the dispatcher).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch.case_intake import place_complaint
from gis.dispatch.cases import create_case
from gis.dispatch.deadlines import compute_due
from gis.dispatch.routing import route_point
from gis.dispatch.routing_batch import route_frame
from gis.dispatch.routing_settings import RoutingSettings
from gis.dispatch.workflow import OPEN_STATUSES
from gis.platform.errors import CityGridError, InvalidInputError, NotFoundError
from gis.platform.settings import CitySettings
from gis.public.masking import redact

SERVICE_CODE = re.compile(r"^(event|component)-([0-9]{4})$")
COMPONENT_CODE = re.compile(r"^[0-9]{16}$")
MAX_SPAN = dt.timedelta(days=90)  # GeoReport v2: a date range may not span more than 90 days
MAX_REQUESTS = 1000  # GeoReport v2: up to 1,000 requests in one answer
ACTOR = "Open311 接口"
EVENT_MAJORS = {"01": "市容环境", "02": "宣传广告", "03": "施工管理", "04": "突发事件",
                "05": "街面秩序"}
COMPONENT_MAJORS = {"01": "公用设施", "02": "道路交通", "03": "市容环境", "04": "园林绿化",
                    "05": "房屋土地", "06": "其他设施"}
STATUS_NOTES = {"collected": "信息收集", "filed": "案卷建立", "dispatched": "任务派遣",
                "handled": "任务处理", "reported": "处理反馈", "closed": "核查结案",
                "evaluated": "综合评价", "rejected": "不予立案"}


class Service(BaseModel):
    """One GeoReport v2 service."""

    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str = "realtime"
    keywords: str
    group: str


class ServiceAttribute(BaseModel):
    """An extra field a service accepts (GeoReport v2 service definition)."""

    variable: bool = True
    code: str
    datatype: str
    required: bool
    datatype_description: str
    order: int
    description: str
    values: list[dict[str, str]] = []


class ServiceDefinition(BaseModel):
    """A service's attributes."""

    service_code: str
    attributes: list[ServiceAttribute]


class ServiceRequest(BaseModel):
    """A service request as GeoReport v2 publishes it: no personal data of the reporter."""

    service_request_id: str
    status: str
    status_notes: str | None
    service_name: str | None
    service_code: str
    description: str | None
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: dt.datetime
    updated_datetime: dt.datetime | None
    expected_datetime: dt.datetime | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float
    long: float
    media_url: str | None


@dataclass(frozen=True)
class NewRequest:
    """A posted service request, already parsed (the API checks types)."""

    service_code: str
    lat: float | None
    long: float | None
    address_string: str | None = None
    description: str | None = None
    media_url: str | None = None
    component_code: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    device_id: str | None = None
    account_id: str | None = None


COMPONENT_ATTRIBUTE = ServiceAttribute(
    code="component_code", datatype="string", required=False, order=1,
    datatype_description="16 位部件编码，如 3701020118000001",
    description="部件编码（路灯、井盖等，可选）")


def parse_service_code(code: str) -> tuple[str, str]:
    """(category_type, category_code) of 'event-0101'; InvalidInputError naming a bad code."""
    match = SERVICE_CODE.match(code or "")
    if match is None:
        raise InvalidInputError(f"service_code {code!r} must look like event-0101 or "
                                "component-0118")
    return match[1], match[2]


def list_services(session: Session) -> list[Service]:
    """Every event category and component class as a service, events first."""
    # pub.services (migration 0013): readable by the anonymous role.
    rows = session.execute(text(
        "SELECT type, code, major, name_zh FROM pub.services ORDER BY 1 DESC, 2")
    ).mappings().all()
    return [_service(r) for r in rows]


def get_service(session: Session, service_code: str) -> Service:
    """One service; NotFoundError naming an unknown code."""
    category_type, code = parse_service_code(service_code)
    row = session.execute(text("SELECT type, code, major, name_zh FROM pub.services "
                               "WHERE type = :t AND code = :c"), {"t": category_type, "c": code}
                          ).mappings().first()
    if row is None:
        raise NotFoundError(f"service_code {service_code!r} is not a service of this city")
    return _service(row)


def service_definition(session: Session, service_code: str) -> ServiceDefinition:
    """The attributes a service accepts (components: an optional component_code)."""
    service = get_service(session, service_code)
    attributes = [COMPONENT_ATTRIBUTE] if service.metadata else []
    return ServiceDefinition(service_code=service.service_code, attributes=attributes)


def submit_request(session: Session, request: NewRequest, *, at: dt.datetime,
                   routing: RoutingSettings, city: CitySettings) -> ServiceRequest:
    """Route and store a posted request as a case; the stored request as GeoReport shows it."""
    try:
        get_service(session, request.service_code)
    except NotFoundError as exc:
        raise InvalidInputError(str(exc)) from None  # a bad field of the post: 400, not 404
    category_type, category_code = parse_service_code(request.service_code)
    has_point = request.lat is not None and request.long is not None
    if not has_point and not (request.address_string or "").strip():
        raise InvalidInputError("lat and long, or address_string, are required (GeoReport v2: "
                                "a location); address_id is not known to this city")
    if (request.lat is None) != (request.long is None):
        raise InvalidInputError("give both lat and long, or neither and an address_string")
    lat, lon = request.lat, request.long
    if lat is not None and lon is not None and not (
            math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90
            and -180 <= lon <= 180):
        raise InvalidInputError(f"lat {lat} / long {lon} is not a WGS84 position")
    if request.component_code is not None:
        if category_type != "component":
            raise InvalidInputError(f"attribute component_code {request.component_code!r} "
                                    f"only goes with component services, not "
                                    f"{request.service_code!r}")
        if not COMPONENT_CODE.match(request.component_code):
            raise InvalidInputError(f"attribute component_code {request.component_code!r} "
                                    "must be 16 digits")
    if request.media_url is not None and not re.match(r"^https?://", request.media_url, re.I):
        raise InvalidInputError(f"media_url {request.media_url!r} must be an http(s) URL")
    try:
        # Without lat/long the address_string is geocoded; an address that cannot be located
        # with confidence is refused (400), nothing stored.
        placed = place_complaint(session, x=lon, y=lat, crs="wgs84",
                                 address=request.address_string, at=at,
                                 category_type=category_type, category_code=category_code,
                                 component_code=request.component_code, routing=routing,
                                 city=city)
    except NotFoundError as exc:  # a named component that does not exist
        raise InvalidInputError(str(exc)) from None
    case = create_case(session, category_type=category_type, category_code=category_code,
                       channel="open311", x=placed.lon if lon is None else lon,
                       y=placed.lat if lat is None else lat, crs="wgs84", reported_at=at,
                       actor=ACTOR, description=request.description or "", route=placed,
                       address=placed.address, geocode_level=placed.geocode_level,
                       geocode_score=placed.geocode_score, city=city)
    session.execute(text("""
        INSERT INTO open311_requests (case_id, service_code, address_string, media_url,
            component_code, reporter_email, reporter_first_name, reporter_last_name,
            reporter_phone, device_id, account_id)
        VALUES (:case_id, :service_code, :address_string, :media_url, :component_code,
            :email, :first_name, :last_name, :phone, :device_id, :account_id)"""), {
        "case_id": case.id, "service_code": request.service_code,
        "address_string": request.address_string, "media_url": request.media_url,
        "component_code": request.component_code, "email": request.email,
        "first_name": request.first_name, "last_name": request.last_name,
        "phone": request.phone, "device_id": request.device_id,
        "account_id": request.account_id})
    return get_request(session, case.case_no, routing=routing, city=city)


def get_request(session: Session, request_id: str, *, routing: RoutingSettings,
                city: CitySettings, reader: Session | None = None) -> ServiceRequest:
    """One service request by its id (the case number); NotFoundError naming it.

    `reader` (default `session`) reads the published row, e.g. as the anonymous role;
    `session` works out the responsible unit and the expected date from the routing tables.
    """
    rows = _select(reader or session, "c.case_no = :id", {"id": request_id}, limit=1,
                   offset=0)
    if not rows:
        raise NotFoundError(f"service request {request_id!r} does not exist")
    return _to_request(session, rows[0], routing=routing, city=city)


def list_requests(session: Session, *, routing: RoutingSettings, city: CitySettings,
                  now: dt.datetime, service_codes: list[str] | None = None,
                  statuses: list[str] | None = None, start: dt.datetime | None = None,
                  end: dt.datetime | None = None, request_ids: list[str] | None = None,
                  limit: int = MAX_REQUESTS, offset: int = 0,
                  reader: Session | None = None) -> list[ServiceRequest]:
    """Requests newest first, filtered as GeoReport v2 says (default: the last 90 days).

    `statuses` is a list of 'open' / 'closed' (the spec's comma list); both or none: any.

    The filters run on `reader` (default `session`), e.g. the anonymous role's session.
    """
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if request_ids:
        conditions.append("c.case_no = ANY(:ids)")
        params["ids"] = request_ids
    else:
        for name, moment in (("start_date", start), ("end_date", end)):
            if moment is not None and moment.tzinfo is None:
                raise InvalidInputError(f"{name} {moment.isoformat()} needs a time zone "
                                        "offset, e.g. 2026-11-01T00:00:00+08:00")
        end = end or (start + MAX_SPAN if start is not None else now)
        start = start or end - MAX_SPAN
        if start > end:
            raise InvalidInputError(f"start_date {start.isoformat()} is after end_date "
                                    f"{end.isoformat()}")
        if end - start > MAX_SPAN:
            raise InvalidInputError(f"start_date {start.isoformat()} to end_date "
                                    f"{end.isoformat()} spans more than 90 days")
        conditions.append("c.reported_at BETWEEN :start AND :end")
        params.update(start=start, end=end)
    if service_codes:
        pairs = [parse_service_code(code) for code in service_codes]
        conditions.append("(c.category_type || '-' || c.category_code) = ANY(:codes)")
        params["codes"] = [f"{t}-{c}" for t, c in pairs]
    wanted = set(statuses or ())
    unknown = sorted(wanted - {"open", "closed"})
    if unknown:
        raise InvalidInputError(f"status {unknown[0]!r} must be 'open' or 'closed' (or both, "
                                "comma-separated)")
    if len(wanted) == 1:
        negate = "" if wanted == {"open"} else "NOT "
        conditions.append(f"{negate}(c.status = ANY(:open_statuses))")
        params["open_statuses"] = list(OPEN_STATUSES)
    if not 1 <= limit <= MAX_REQUESTS or offset < 0:
        raise InvalidInputError(f"page_size {limit} must be 1..{MAX_REQUESTS} and the page "
                                "positive")
    rows = _select(reader or session, " AND ".join(conditions) or "true", params,
                   limit=limit, offset=offset)
    agencies = agencies_for(session, rows, routing=routing, city=city)
    return [_to_request(session, row, routing=routing, city=city, agency=agency)
            for row, agency in zip(rows, agencies, strict=True)]


def _service(row: Any) -> Service:
    component = row["type"] == "component"
    majors = COMPONENT_MAJORS if component else EVENT_MAJORS
    group = majors.get(row["major"], row["major"])
    return Service(service_code=f"{row['type']}-{row['code']}", service_name=row["name_zh"],
                   description=f"{'部件' if component else '事件'} {group} / {row['name_zh']}",
                   metadata=component, keywords=f"{group},{row['name_zh']}", group=group)


# Only columns a resident may see: the view pub.service_requests (migration 0013) holds no
# reporter contact column, and the anonymous role can read nothing else.
_REQUEST_SELECT = "SELECT * FROM pub.service_requests c"


def _select(session: Session, where: str, params: dict[str, Any], *, limit: int,
            offset: int) -> list[Any]:
    return list(session.execute(text(
        f"{_REQUEST_SELECT} WHERE {where} ORDER BY c.reported_at DESC, c.id DESC "
        "LIMIT :limit OFFSET :offset"), {**params, "limit": limit, "offset": offset}
    ).mappings().all())


def agency_for(session: Session, row: Any, *, routing: RoutingSettings,
               city: CitySettings) -> str | None:
    """The responsible unit of a stored request, by the routing rules at its time."""
    try:
        routed = route_point(session, x=row["lon"], y=row["lat"], crs="wgs84",
                             at=row["reported_at"], category_type=row["category_type"],
                             category_code=row["category_code"],
                             component_code=row["component_code"], settings=routing,
                             city=city)
    except CityGridError:
        return None  # e.g. a grid since removed: unknown rather than wrong
    owner = routed.owner
    if owner.kind == "grid_worker" and routed.responsible_unit == owner.name:
        # A grid worker is a person: publish the post, not the name.
        return f"{routed.community_name}网格员（单元网格 {routed.grid_code}）"
    return routed.responsible_unit


def expected_for(session: Session, row: Any) -> dt.datetime | None:
    """When the request should be fixed: handling deadline, or its estimate before dispatch."""
    if row["due_at"] is not None:
        return row["due_at"]  # type: ignore[no-any-return]
    if row["status"] not in OPEN_STATUSES:
        return None
    start = row["dispatch_due_at"] or row["reported_at"]
    try:
        return compute_due(session, category_type=row["category_type"],
                           category_code=row["category_code"], urgency=row["urgency"],
                           area_type=row["area_type"], step="handle", start=start).due_at
    except CityGridError:
        return None


def agencies_for(session: Session, rows: list[Any], *, routing: RoutingSettings,
                 city: CitySettings) -> list[str | None]:
    """The responsible units of many stored requests, routed as one batch.

    An anonymous list may hold 1,000 requests: routing them one by one cost 6-13 ms each
    (seconds of database work per request), the batch router does them in one pass.
    """
    if len(rows) <= 1:
        return [agency_for(session, row, routing=routing, city=city) for row in rows]
    frame = pd.DataFrame({
        "x": [row["lon"] for row in rows], "y": [row["lat"] for row in rows],
        "at": [row["reported_at"].isoformat() for row in rows],
        "category_type": [row["category_type"] for row in rows],
        "category_code": [row["category_code"] for row in rows],
        "component_code": [row["component_code"] or "" for row in rows]})
    routed = route_frame(session.connection(), frame, settings=routing, city=city)
    agencies: list[str | None] = []
    records: list[dict[Any, Any]] = routed.astype(object).where(routed.notna(), None).to_dict(
        "records")
    for r in records:
        unit = r["responsible_unit"]
        if r["reason"] or not unit:
            agencies.append(None)  # e.g. a grid since removed: unknown rather than wrong
        elif r["owner_kind"] == "grid_worker" and unit == r["owner_name"]:
            agencies.append(f"{r['community_name']}网格员（单元网格 {r['grid_code']}）")
        else:
            agencies.append(str(unit))
    return agencies


def _to_request(session: Session, row: Any, *, routing: RoutingSettings,
                city: CitySettings, agency: str | bool | None = False) -> ServiceRequest:
    # `agency` False: work it out here (a single request).
    if agency is False:
        agency = agency_for(session, row, routing=routing, city=city)
    return ServiceRequest(
        service_request_id=row["case_no"],
        status="open" if row["status"] in OPEN_STATUSES else "closed",
        status_notes=STATUS_NOTES.get(row["status"]),
        service_name=row["service_name"],
        service_code=f"{row['category_type']}-{row['category_code']}",
        description=redact(row["description"]) or None,
        agency_responsible=agency if isinstance(agency, str) else None,
        service_notice=None,
        requested_datetime=row["reported_at"],
        updated_datetime=row["updated_at"] or row["reported_at"],
        expected_datetime=expected_for(session, row),
        address=redact(row["address_string"]) if row["address_string"] else None,
        address_id=None, zipcode=None,
        lat=row["lat"], long=row["lon"], media_url=row["media_url"])
