"""Open311 GeoReport v2 (JSON) under /open311/v2: discovery, services, service requests.

Errors follow the GeoReport format, a JSON list `[{"code": 400, "description": "..."}]`, with
400 for bad input (the spec's status for it, where the rest of citygrid answers 422), 404 for
an unknown service or request. POST accepts application/x-www-form-urlencoded (the spec's
form) or JSON with the same keys; `attribute[component_code]` names a component.
Read routes page with `page` / `page_size` because every request is routed on read to name
its agency: see gis/public/open311.py.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import PublicSessionDep, SessionDep, SettingsDep
from api.params import SaneDatetime
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


class Open311Error(BaseModel):
    """One GeoReport v2 error."""

    code: int
    description: str


def _errors(status: int, description: str) -> JSONResponse:
    return JSONResponse([{"code": status, "description": description}], status_code=status)


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
                return _errors(400, "; ".join(parts))
            except NotFoundError as exc:
                return _errors(404, str(exc))
            except AuthenticationError as exc:
                return _errors(401, str(exc))
            except PermissionDeniedError as exc:
                return _errors(403, str(exc))
            except CityGridError as exc:
                return _errors(400, str(exc))

        return route


router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=Open311Route,
                   responses={400: {"model": list[Open311Error]},
                              401: {"model": list[Open311Error]},
                              403: {"model": list[Open311Error]},
                              404: {"model": list[Open311Error]}})


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


@router.get("/discovery.json", response_model=Discovery)
def discovery(request: Request, settings: SettingsDep) -> Discovery:
    """Where this GeoReport v2 endpoint is and what it speaks."""
    base = str(request.url_for("services")).rsplit("/", 1)[0]
    return Discovery(changeset=CHANGESET, contact=f"{settings.city.name} 数字化城管 12319",
                     key_service="api_key: a dispatcher account's token, from the city's "
                                 "citygrid administrator",
                     endpoints=[Endpoint(
                         specification=SPEC_URL, url=base, changeset=CHANGESET,
                         type="production", formats=["application/json"])])


@router.get("/services.json", response_model=list[open311.Service], name="services")
def services(session: PublicSessionDep,
             jurisdiction_id: Jurisdiction = None) -> list[open311.Service]:
    """Every service: event categories, then component classes."""
    return open311.list_services(session)


@router.get("/services/{service_code}.json", response_model=open311.ServiceDefinition)
def service_definition(
    session: PublicSessionDep,
    service_code: Annotated[str, Path(description="e.g. event-0501 or component-0118")],
    jurisdiction_id: Jurisdiction = None,
) -> open311.ServiceDefinition:
    """The attributes a service accepts."""
    return open311.service_definition(session, service_code)


@router.post("/requests.json", response_model=list[PostedRequest], status_code=201)
def post_request(request: Request, form: FormDep, session: SessionDep, settings: SettingsDep,
                 routing: RoutingSettingsDep) -> list[PostedRequest]:
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
                         request="POST /open311/v2/requests.json")
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
    return [PostedRequest(
        service_request_id=stored.service_request_id,
        service_notice=f"已受理，受理编号 {stored.service_request_id}",
        account_id=None, agency_responsible=stored.agency_responsible,
        expected_datetime=stored.expected_datetime)]


@router.get("/requests.json", response_model=list[open311.ServiceRequest])
def list_requests(
    session: SessionDep, public_session: PublicSessionDep, settings: SettingsDep,
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
    status: Annotated[str | None, Query(description="open or closed")] = None,
    page: Annotated[int, Query(ge=1, description="page number, from 1")] = 1,
    page_size: Annotated[int, Query(ge=1, le=200, description="requests per page")] = 50,
    jurisdiction_id: Jurisdiction = None,
) -> list[open311.ServiceRequest]:
    """Service requests newest first, filtered by id, service, dates and status."""
    ids = [i.strip() for i in service_request_id.split(",") if i.strip()] \
        if service_request_id else None
    codes = [c.strip() for c in service_code.split(",") if c.strip()] if service_code else None
    return open311.list_requests(
        session, routing=routing, city=settings.city, now=dt.datetime.now(dt.UTC),
        service_codes=codes, status=status, start=start_date, end=end_date, request_ids=ids,
        limit=page_size, offset=(page - 1) * page_size, reader=public_session)


@router.get("/requests/{service_request_id}.json", response_model=list[open311.ServiceRequest])
def get_request(
    session: SessionDep, public_session: PublicSessionDep, settings: SettingsDep,
    routing: RoutingSettingsDep,
    service_request_id: Annotated[str, Path(description="the case number")],
    jurisdiction_id: Jurisdiction = None,
) -> list[open311.ServiceRequest]:
    """One service request (a list of one, as the spec says)."""
    # The row (and every filter the client sends) is read as the anonymous role; the app
    # role only works out the responsible unit and the expected date from that row.
    return [open311.get_request(session, service_request_id, routing=routing,
                                city=settings.city, reader=public_session)]
