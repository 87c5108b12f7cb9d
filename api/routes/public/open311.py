"""Open311 GeoReport v2 under /open311/v2: discovery, services, service requests.

Every endpoint speaks both formats of the spec: `.json` and `.xml` (api/open311_xml.py builds
the XML from the same response models, so both carry the same masked values). Errors follow
the GeoReport format in the format asked for, `[{"code": 400, "description": "..."}]` or
`<errors><error><code/><description/></error></errors>`, with 400 for bad input (the spec's
status for it, where the rest of citygrid answers 422), 404 for an unknown service, request or
route anywhere under /open311, 405 for a method a route does not take.
POST accepts application/x-www-form-urlencoded (the spec's form) or JSON with the same keys;
`attribute[component_code]` names a component. GET requests answers the spec's default, the
requests of the last 90 days, up to 1,000 at a time; `page` / `page_size` (an extension) page
further. `status` and `service_code` take comma-separated lists.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import SessionDep, SettingsDep
from api.open311_xml import XML_MEDIA_TYPE, XMLResponse, errors_document, xml_document
from api.params import MAX_OFFSET_ROWS, SaneDatetime
from api.read_routing import AppReadSessionDep, PublicReadSessionDep
from api.routes.dispatch.routing import RoutingSettingsDep
from gis.access import auth
from gis.platform.errors import (
    AuthenticationError,
    CityGridError,
    NotFoundError,
    PermissionDeniedError,
)
from gis.platform.errors import InvalidInputError as BadInput
from gis.public import open311

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-23T00:00:00Z"
PREFIX = "/open311"
MAX_PAGE_SIZE = 1000  # GeoReport v2: up to 1,000 requests in one answer


class Open311Error(BaseModel):
    """One GeoReport v2 error."""

    code: int
    description: str


def wants_xml(request: Request) -> bool:
    """Whether the request asked for GeoReport XML (a `.xml` path)."""
    return request.url.path.endswith(".xml")


def open311_errors(request: Request, status: int, description: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    """A GeoReport v2 error list in the format the request asked for."""
    if wants_xml(request):
        return XMLResponse(errors_document(status, description), status_code=status,
                           headers=headers)
    return JSONResponse([{"code": status, "description": description}], status_code=status,
                        headers=headers)


def reply(request: Request, root: str, data: Any, status_code: int = 200) -> Any:
    """`data` (a response model or a list of them) as JSON or as the spec's XML `<root>`."""
    if not wants_xml(request):
        return data
    dumped = ([item.model_dump(mode="json") for item in data] if isinstance(data, list)
              else data.model_dump(mode="json"))
    return XMLResponse(xml_document(root, dumped), status_code=status_code)


class Open311Route(APIRoute):
    """A route whose errors come back in GeoReport v2 format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the handler: validation and domain errors become Open311 error lists."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                parts = []
                for error in exc.errors():
                    where = ".".join(str(p) for p in error.get("loc", ()) if p != "query")
                    given = error.get("input")
                    parts.append(f"{where}: {error.get('msg')} (got {given!r})")
                return open311_errors(request, 400, "; ".join(parts))
            except NotFoundError as exc:
                return open311_errors(request, 404, str(exc))
            except AuthenticationError as exc:
                return open311_errors(request, 401, str(exc))
            except PermissionDeniedError as exc:
                return open311_errors(request, 403, str(exc))
            except CityGridError as exc:
                return open311_errors(request, 400, str(exc))

        return route


router = APIRouter(prefix=f"{PREFIX}/v2", tags=["open311"], route_class=Open311Route)
_ERROR_STATUSES = (400, 401, 403, 404)
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": list[Open311Error]} for status in _ERROR_STATUSES}
_XML_CONTENT = {XML_MEDIA_TYPE: {"schema": {"type": "string"}}}
XML_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": "GeoReport v2 <errors>", "content": _XML_CONTENT}
    for status in _ERROR_STATUSES}
XML_OK: dict[int | str, dict[str, Any]] = {
    200: {"description": "GeoReport v2 XML", "content": _XML_CONTENT}, **XML_ERRORS}
XML_CREATED: dict[int | str, dict[str, Any]] = {
    201: {"description": "GeoReport v2 XML", "content": _XML_CONTENT}, **XML_ERRORS}


class Endpoint(BaseModel):
    """One endpoint of the discovery document."""

    specification: str
    url: str
    changeset: str
    type: str
    formats: list[str]


class Discovery(BaseModel):
    """The GeoReport v2 discovery document."""

    changeset: str
    contact: str
    key_service: str
    endpoints: list[Endpoint]


class PostedRequest(BaseModel):
    """The answer to a posted request."""

    service_request_id: str
    service_notice: str | None
    account_id: str | None
    agency_responsible: str | None
    expected_datetime: dt.datetime | None


class RequestForm(BaseModel):
    """The fields of POST requests.json (strings from a form are converted)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    api_key: str | None = Field(default=None, max_length=200)
    service_code: str = Field(min_length=1)
    lat: float | None = Field(default=None, allow_inf_nan=False)
    long: float | None = Field(default=None, allow_inf_nan=False)
    address_string: str | None = Field(default=None, max_length=500)
    address_id: str | None = None
    description: str | None = Field(default=None, max_length=4000)
    media_url: str | None = Field(default=None, max_length=2000)
    email: str | None = Field(default=None, max_length=320)
    device_id: str | None = Field(default=None, max_length=200)
    account_id: str | None = Field(default=None, max_length=200)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=50)
    attribute: dict[str, str] = Field(default_factory=dict)


async def request_form(request: Request) -> RequestForm:
    """The posted request, from a form or JSON; 400 naming the field on a bad value."""
    content_type = request.headers.get("content-type", "")
    raw: dict[str, Any]
    if content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise BadInput(f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadInput("request body must be a JSON object of GeoReport fields")
        raw = dict(body)
    else:
        form = await request.form()
        raw = {key: value for key, value in form.items() if isinstance(value, str)}
    attributes = dict(raw.pop("attribute", None) or {})
    for key in [k for k in raw if k.startswith("attribute[") and k.endswith("]")]:
        attributes[key[len("attribute["):-1]] = raw.pop(key)
    # Empty form fields mean "not given", as HTML forms send them.
    raw = {k: (None if v == "" else v) for k, v in raw.items()}
    # Who posts is checked before what is posted: an anonymous caller learns nothing more.
    if not raw.get("api_key") and not request.headers.get("authorization"):
        raise AuthenticationError("api_key is required to post a service request "
                                  "(a citygrid token of a dispatcher account)")
    try:
        return RequestForm(**raw, attribute={k: str(v) for k, v in attributes.items()})
    except ValidationError as exc:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                 for e in exc.errors()]
        raise BadInput("; ".join(parts)) from None


FormDep = Annotated[RequestForm, Depends(request_form)]
Jurisdiction = Annotated[str | None, Query(description="accepted and ignored: one city")]


@router.get("/discovery.xml", response_model=None, response_class=XMLResponse,
            responses=XML_OK)
@router.get("/discovery.json", response_model=Discovery, responses=JSON_ERRORS)
def discovery(request: Request, settings: SettingsDep) -> Discovery | Response:
    """Where this GeoReport v2 endpoint is and what it speaks."""
    base = str(request.url_for("services")).rsplit("/", 1)[0]
    return reply(request, "discovery", Discovery(
        changeset=CHANGESET, contact=f"{settings.city.name} 数字化城管 12319",
        key_service="api_key: a dispatcher account's token, from the city's citygrid "
                    "administrator",
        endpoints=[Endpoint(specification=SPEC_URL, url=base, changeset=CHANGESET,
                            type="production", formats=["text/xml", "application/json"])]))


@router.get("/services.xml", response_model=None, response_class=XMLResponse,
            responses=XML_OK)
@router.get("/services.json", response_model=list[open311.Service], name="services",
            responses=JSON_ERRORS)
def services(request: Request, session: PublicReadSessionDep,
             jurisdiction_id: Jurisdiction = None) -> list[open311.Service] | Response:
    """Every service: event categories, then component classes."""
    return reply(request, "services", open311.list_services(session))  # type: ignore[no-any-return]


@router.get("/services/{service_code}.xml", response_model=None, response_class=XMLResponse,
            responses=XML_OK)
@router.get("/services/{service_code}.json", response_model=open311.ServiceDefinition,
            responses=JSON_ERRORS)
def service_definition(
    request: Request,
    session: PublicReadSessionDep,
    service_code: Annotated[str, Path(description="e.g. event-0501 or component-0118")],
    jurisdiction_id: Jurisdiction = None,
) -> open311.ServiceDefinition | Response:
    """The attributes a service accepts."""
    return reply(  # type: ignore[no-any-return]
        request, "service_definition", open311.service_definition(session, service_code))


@router.post("/requests.xml", response_model=None, response_class=XMLResponse,
             status_code=201, responses=XML_CREATED)
@router.post("/requests.json", response_model=list[PostedRequest], status_code=201,
             responses=JSON_ERRORS)
def post_request(request: Request, form: FormDep, session: SessionDep, settings: SettingsDep,
                 routing: RoutingSettingsDep) -> list[PostedRequest] | Response:
    """Route and record a service request; answers with its id, agency and expected date."""
    # GeoReport v2 asks for an api_key on POST: a token of a dispatcher or admin account made
    # for the posting system (`citygrid user add SYSTEM --role dispatcher`).
    header = request.headers.get("authorization", "")
    api_key = form.api_key or (header[7:] if header.lower().startswith("bearer ") else None)
    if not api_key:
        raise AuthenticationError("api_key is required to post a service request "
                                  "(a citygrid token of a dispatcher account)")
    poster = auth.user_for_token(session, api_key)
    if poster.role not in ("dispatcher", "admin"):
        raise PermissionDeniedError(f"api_key of user {poster.username!r} (role "
                                    f"{poster.role!r}) may not post service requests")
    auth.tag_transaction(session, actor=poster.username, role=poster.role,
                         request=f"POST {request.url.path}")
    unknown = set(form.attribute) - {"component_code"}
    if unknown:
        raise BadInput(f"unknown attribute(s) {sorted(unknown)}; only component_code is known")
    new = open311.NewRequest(
        service_code=form.service_code, lat=form.lat, long=form.long,
        address_string=form.address_string, description=form.description,
        media_url=form.media_url, component_code=form.attribute.get("component_code"),
        email=form.email, first_name=form.first_name, last_name=form.last_name,
        phone=form.phone, device_id=form.device_id, account_id=form.account_id)
    stored = open311.submit_request(session, new, at=dt.datetime.now(dt.UTC), routing=routing,
                                    city=settings.city)
    session.commit()
    return reply(request, "service_requests", [PostedRequest(  # type: ignore[no-any-return]
        service_request_id=stored.service_request_id,
        service_notice=f"已受理，受理编号 {stored.service_request_id}",
        account_id=None, agency_responsible=stored.agency_responsible,
        expected_datetime=stored.expected_datetime)], status_code=201)


def _comma_list(value: str | None) -> list[str] | None:
    items = [item.strip() for item in value.split(",") if item.strip()] if value else []
    return items or None


@router.get("/requests.xml", response_model=None, response_class=XMLResponse,
            responses=XML_OK)
@router.get("/requests.json", response_model=list[open311.ServiceRequest],
            responses=JSON_ERRORS)
def list_requests(
    request: Request,
    session: AppReadSessionDep, public_session: PublicReadSessionDep, settings: SettingsDep,
    routing: RoutingSettingsDep,
    service_request_id: Annotated[str | None, Query(
        description="comma-separated ids; other filters are then ignored")] = None,
    service_code: Annotated[str | None, Query(description="comma-separated service codes")]
    = None,
    start_date: Annotated[SaneDatetime | None, Query(
        description="earliest requested_datetime (with offset)")] = None,
    end_date: Annotated[SaneDatetime | None, Query(
        description="latest requested_datetime (with offset); span at most 90 days, "
                    "default the last 90 days")] = None,
    status: Annotated[str | None, Query(
        description="open, closed or both comma-separated; default any")] = None,
    page: Annotated[int, Query(ge=1, description="page number, from 1 (an extension)")] = 1,
    page_size: Annotated[int, Query(
        ge=1, le=MAX_PAGE_SIZE, description="requests per page (an extension); default and "
                                            "most 1000, as the spec says")] = MAX_PAGE_SIZE,
    jurisdiction_id: Jurisdiction = None,
) -> list[open311.ServiceRequest] | Response:
    """Service requests newest first, filtered by id, service, dates and status."""
    offset = (page - 1) * page_size
    if offset > MAX_OFFSET_ROWS:  # an OFFSET past bigint was a database error, not a 400
        raise BadInput(f"page {page} of {page_size} starts after request {MAX_OFFSET_ROWS:,}; "
                       f"no list is that long")
    found = open311.list_requests(
        session, routing=routing, city=settings.city, now=dt.datetime.now(dt.UTC),
        service_codes=_comma_list(service_code), statuses=_comma_list(status),
        start=start_date, end=end_date, request_ids=_comma_list(service_request_id),
        limit=page_size, offset=offset, reader=public_session)
    return reply(request, "service_requests", found)  # type: ignore[no-any-return]


@router.get("/requests/{service_request_id}.xml", response_model=None,
            response_class=XMLResponse, responses=XML_OK)
@router.get("/requests/{service_request_id}.json", response_model=list[open311.ServiceRequest],
            responses=JSON_ERRORS)
def get_request(
    request: Request,
    session: AppReadSessionDep, public_session: PublicReadSessionDep, settings: SettingsDep,
    routing: RoutingSettingsDep,
    service_request_id: Annotated[str, Path(description="the case number")],
    jurisdiction_id: Jurisdiction = None,
) -> list[open311.ServiceRequest] | Response:
    """One service request (a list of one, as the spec says)."""
    # The row (and every filter the client sends) is read as the anonymous role; the app
    # role only works out the responsible unit and the expected date from that row.
    found = open311.get_request(session, service_request_id, routing=routing,
                                city=settings.city, reader=public_session)
    return reply(request, "service_requests", [found])  # type: ignore[no-any-return]


def install_open311_errors(app: FastAPI) -> None:
    """Unknown routes and methods under /open311 answer GeoReport errors (JSON or XML)."""
    previous_http = app.exception_handlers[StarletteHTTPException]

    async def http_error(request: Request, exc: Exception) -> Response:
        path = request.url.path
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            result = previous_http(request, exc)
            return await result if inspect.isawaitable(result) else result  # type: ignore[no-any-return]
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            description = (f"no GeoReport v2 resource at {path}; this server's endpoint is "
                           f"{PREFIX}/v2 (see {PREFIX}/v2/discovery.json)")
        elif exc.status_code == 405:
            description = f"{request.method} is not allowed on {path}"
        else:
            description = str(exc.detail)
        return open311_errors(request, exc.status_code, description, headers=exc.headers)

    app.add_exception_handler(StarletteHTTPException, http_error)
