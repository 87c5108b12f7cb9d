"""Case workflow routes: create a case, act on it, list open, overdue and supervised cases."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from api.auth import CaseWorkerDep, DispatcherDep, require_roles, staff_only
from api.deps import BBoxDep, PagingDep, SessionDep, SettingsDep
from api.idempotency import IdempotentDep
from api.params import SaneAwareDatetime
from api.routes.dispatch.routing import RoutingSettingsDep
from gis.access.auth import User
from gis.dispatch import cases as case_service
from gis.dispatch.case_intake import place_complaint
from gis.dispatch.deadlines import list_overdue
from gis.dispatch.recent_cases import DEFAULT_HOURS, MAX_HOURS, list_recent
from gis.dispatch.repeats import list_supervised
from gis.field import acted_at
from gis.platform.errors import InvalidInputError, PermissionDeniedError

router = APIRouter(tags=["dispatch"], dependencies=[staff_only])
# A grid owner does the work on the street; filing, dispatching and closing stay with the centre.
GRID_OWNER_ACTIONS = frozenset({"handle", "report"})

CategoryType = Literal["event", "component"]
Channel = Literal["hotline_12345", "hotline_12319", "wechat", "patrol"]
RawCrs = Literal["wgs84", "gcj02", "bd09", "cgcs2000"]
Urgency = Literal["urgent", "normal"]
AreaType = Literal["city", "rural"]
Status = Literal["collected", "filed", "dispatched", "handled", "reported", "closed",
                 "evaluated", "rejected"]
Satisfaction = Literal["satisfied", "basically", "unsatisfied"]


class CaseCreate(BaseModel):
    """A complaint as taken by the dispatcher (信息收集)."""

    model_config = ConfigDict(extra="forbid")

    category_type: CategoryType
    category_code: str = Field(pattern=r"^[0-9]{4}$", examples=["0118"])
    channel: Channel
    x: float | None = Field(default=None, allow_inf_nan=False,
                            description="longitude in `crs`; omit both x and y to file by "
                                        "`address`", examples=[117.03])
    y: float | None = Field(default=None, allow_inf_nan=False, description="latitude in `crs`",
                            examples=[36.66])
    crs: RawCrs = "wgs84"
    address: str | None = Field(default=None, max_length=500, description=(
        "the address as the caller gave it; kept on the case. Without x/y it is geocoded, "
        "and refused (422) when it cannot be located with confidence"),
        examples=["历下区模拟经三路12号"])
    reported_at: SaneAwareDatetime | None = Field(
        default=None, description="when the complaint came in; default now")
    description: str = Field(default="", max_length=4000)
    urgency: Urgency = "normal"
    area_type: AreaType = "city"
    case_no: str | None = Field(default=None, min_length=1, max_length=64)


class CaseAction(BaseModel):
    """Who performs a workflow action, when, and what it needs (reason, rating, new due)."""

    model_config = ConfigDict(extra="forbid")

    at: SaneAwareDatetime | None = Field(default=None, description="default now")
    acted_at: SaneAwareDatetime | None = Field(default=None, description=(
        "when the phone made the action (offline queue); kept if between the dispatch and "
        "now + 2 min, else now and flagged (gis.field.acted_at); not with `at`"))
    note: str = Field(default="", max_length=4000,
                      description="reason; required for reject, rework and extend")
    satisfaction: Satisfaction | None = Field(default=None, description="for evaluate (回访)")
    extend_to: SaneAwareDatetime | None = Field(default=None, description="for extend: new due")


class TransitionOut(BaseModel):
    """One audit row of a case."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    action: str
    from_status: str | None
    to_status: str
    actor: str
    at: dt.datetime
    note: str


class CaseOut(BaseModel):
    """A case with its deadlines, counters and repeat links."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    case_no: str
    category_type: str
    category_code: str
    channel: str
    description: str
    raw_x: float
    raw_y: float
    raw_crs: str
    lon: float
    lat: float
    grid_code: str | None
    status: str
    is_open: bool
    allowed_actions: list[str]
    urgency: str
    area_type: str
    reported_at: dt.datetime
    dispatch_due_at: dt.datetime | None
    dispatched_at: dt.datetime | None
    due_at: dt.datetime | None
    verify_due_at: dt.datetime | None
    current_due_at: dt.datetime | None
    due_approximate: bool
    closed_at: dt.datetime | None
    reworked_count: int
    extended_count: int
    satisfaction: str | None
    surveyed_at: dt.datetime | None
    replied_at: dt.datetime | None
    repeat_group_id: int | None
    repeat_of: int | None
    supervised: bool
    address: str | None = Field(None, description="the address as typed")
    geocode_level: str | None = Field(None, description=(
        "how the address was matched when the point came from it: doorplate, interpolated, "
        "intersection, landmark, road or community; null when coordinates were given"))
    geocode_score: float | None = None
    snapped: bool = Field(False, description="the point lay in no grid and was placed in the "
                                             "nearest one (as POST /route does)")
    snap_distance_m: float | None = Field(None, description="metres to that grid")


class CaseDetailOut(CaseOut):
    """A case with its full audit trail."""

    transitions: list[TransitionOut]


class OverdueCaseOut(BaseModel):
    """An open case past the deadline of its current step."""

    model_config = ConfigDict(from_attributes=True)

    case_id: int
    case_no: str
    status: str
    step: str
    due_at: dt.datetime
    overdue_by_minutes: int
    category_type: str
    category_code: str
    grid_code: str | None


class SupervisedGroupOut(BaseModel):
    """A group of repeat complaints on the 重点督办 list."""

    model_config = ConfigDict(from_attributes=True)

    group_id: int
    category_type: str
    category_code: str
    case_ids: list[int]
    case_nos: list[str]
    case_count: int
    open_count: int
    first_reported_at: dt.datetime
    last_reported_at: dt.datetime
    grid_codes: list[str]


CaseRef = Annotated[str, Path(min_length=1, max_length=64, description=(
    "case number (e.g. LX202612030001, also the Open311 service_request_id) or case id"))]
AtQuery = Annotated[SaneAwareDatetime | None, Query(
    description="moment to judge deadlines at, with offset; default now")]


@router.post("/cases", status_code=201, response_model=CaseDetailOut)
def create_case(body: CaseCreate, session: SessionDep, user: DispatcherDep,
                settings: SettingsDep, routing: RoutingSettingsDep) -> CaseDetailOut:
    """Record a complaint: grid, dispatch deadline and repeat links are set at once."""
    reported_at = body.reported_at or dt.datetime.now(dt.UTC)
    # Placed exactly as POST /route places it (a point just outside the district is snapped
    # and recorded as such); an address without coordinates is geocoded first. A WeChat
    # (GCJ-02) or Baidu (BD-09) pin is routed by its WGS84 equivalent; the case still keeps
    # the raw coordinates and their tag.
    placed = place_complaint(session, x=body.x, y=body.y, crs=body.crs, address=body.address,
                             at=reported_at, category_type=body.category_type,
                             category_code=body.category_code, routing=routing,
                             city=settings.city)
    # Filed by address alone: the geocoded WGS84 point stands in for the raw coordinates.
    raw = ((body.x, body.y, body.crs) if body.x is not None and body.y is not None
           else (placed.lon, placed.lat, "wgs84"))
    fields = body.model_dump(exclude={"reported_at", "x", "y", "crs", "address"})
    case = case_service.create_case(
        session, **fields, actor=user.username, reported_at=reported_at, route=placed,
        x=raw[0], y=raw[1], crs=raw[2], address=placed.address,
        geocode_level=placed.geocode_level, geocode_score=placed.geocode_score,
        city=settings.city)
    session.commit()
    return CaseDetailOut.model_validate(case)


@router.get("/cases", response_model=list[CaseOut])
def list_cases(
    session: SessionDep, paging: PagingDep, bbox: BBoxDep,
    status: Annotated[Status | None, Query(description="only cases in this status")] = None,
    overdue: Annotated[bool | None, Query(
        description="true: past the current step's deadline; false: not")] = None,
    at: AtQuery = None,
    grid_code: Annotated[str | None, Query(description="unit grid code")] = None,
    supervised: Annotated[bool | None, Query(description="on the 重点督办 list")] = None,
) -> list[CaseOut]:
    """Cases by status, overdue-ness, grid, supervision and bbox, nearest deadline first."""
    found = case_service.list_cases(session, status=status, overdue=overdue, at=at,
                                    grid_code=grid_code, supervised=supervised,
                                    bbox=bbox.bounds(), limit=paging.limit,
                                    offset=paging.offset)
    return [CaseOut.model_validate(case) for case in found]


# Supervisors are offered the desk too (maps/shell.py), whose list of new cases reads this;
# GET /cases already lists every case to any staff member, so it shows them nothing new.
DeskReaderDep = Annotated[User, Depends(require_roles("dispatcher", "grid_owner", "supervisor"))]


@router.get("/cases/recent", response_model=list[CaseOut])
def recent_cases(
    session: SessionDep, user: DeskReaderDep, paging: PagingDep, at: AtQuery = None,
    hours: Annotated[int, Query(ge=1, le=MAX_HOURS, description=(
        "cases reported in this many hours before `at`"))] = DEFAULT_HOURS,
    mine: Annotated[bool, Query(description="only the cases this user filed")] = False,
) -> list[CaseOut]:
    """New cases first: those reported in the last `hours` and the user's own filings."""
    found = list_recent(session, actor=user.username, at=at, hours=hours, mine_only=mine,
                        limit=paging.limit, offset=paging.offset)
    return [CaseOut.model_validate(case) for case in found]


@router.get("/cases/overdue", response_model=list[OverdueCaseOut])
def overdue_cases(session: SessionDep, at: AtQuery = None) -> list[OverdueCaseOut]:
    """Open cases past the deadline of the step they are in, most overdue first."""
    moment = at or dt.datetime.now(dt.UTC)
    return [OverdueCaseOut(**{k: v for k, v in vars(c).items() if k != "overdue_by"},
                           overdue_by_minutes=int(c.overdue_by.total_seconds() // 60))
            for c in list_overdue(session, at=moment)]


@router.get("/cases/supervised", response_model=list[SupervisedGroupOut])
def supervised_cases(
    session: SessionDep,
    open_only: Annotated[bool, Query(description="only groups with an open case")] = False,
) -> list[SupervisedGroupOut]:
    """Repeat-complaint groups on the 重点督办 list."""
    return [SupervisedGroupOut.model_validate(g)
            for g in list_supervised(session, open_only=open_only)]


@router.get("/cases/{case_id}", response_model=CaseDetailOut)
def get_case(case_id: CaseRef, session: SessionDep) -> CaseDetailOut:
    """One case with its audit trail, by id or by case number."""
    found = case_service.resolve_case_id(session, case_id)
    return CaseDetailOut.model_validate(case_service.get_case(session, found))


@router.post("/cases/{case_id}/actions/{action}", response_model=CaseDetailOut,
             dependencies=[IdempotentDep])
def act_on_case(
    case_id: CaseRef,
    action: Annotated[str, Path(description="file, reject, dispatch, handle, report, close, "
                                            "rework, evaluate, extend or reply")],
    body: CaseAction, session: SessionDep, user: CaseWorkerDep,
) -> CaseDetailOut:
    """Apply one workflow action; a refused action changes nothing (409 or 422)."""
    if user.is_grid_owner and action not in GRID_OWNER_ACTIONS:
        raise PermissionDeniedError(
            f"grid owner {user.username!r} may only {' or '.join(sorted(GRID_OWNER_ACTIONS))} "
            f"a case, not {action!r}")
    # Row-level security hides other grids' cases from a grid owner: they get a 404.
    found = case_service.resolve_case_id(session, case_id)
    fields = body.model_dump(exclude={"acted_at"})
    settled = None
    if body.acted_at is not None:
        if body.at is not None:
            raise InvalidInputError("send `at` (desk) or `acted_at` (phone), not both")
        settled = acted_at.settle(session, found, body.acted_at)
        fields["at"] = settled.at
    case = case_service.transition(session, found, action, **fields, actor=user.username)
    if settled is not None:
        step = max((t for t in case.transitions if t.action == action), key=lambda t: t.id)
        acted_at.record(session, settled, case_id=found, actor=user.username,
                        transition_id=step.id)
    session.commit()
    return CaseDetailOut.model_validate(case)
