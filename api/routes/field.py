"""Field app (城管通): the /field page for phones, its tasks, supervisors' reports and checks.

Grid owners (网格员) see the cases of their grids waiting to be handled or reported back;
supervisors (监督员) see the cases reported back, waiting for an on-site check (核查), and
report new problems from where they stand. Writes take an `Idempotency-Key` so that the
page's offline queue can resend them safely. The page is an installable web app: manifest
and service worker are served here (the worker from /field-sw.js, so its scope can be
`/field`, page included).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from api.auth import StaffDep, require_roles, staff_only
from api.deps import SessionDep
from api.idempotency import IdempotentDep
from api.params import SaneAwareDatetime
from gis.access.auth import ROLE_LABELS_ZH, User
from gis.dispatch import cases as case_service
from gis.field import acted_at
from gis.geo.navigation import navigation_links
from gis.platform.errors import ConflictError
from maps.field import FIELD_ICON_SVG, field_manifest, field_page, service_worker

router = APIRouter(tags=["field"])
FieldUserDep = Annotated[User, Depends(require_roles("grid_owner", "supervisor", "dispatcher"))]
SupervisorDep = Annotated[User, Depends(require_roles("supervisor"))]
# What each role works on in the field: the statuses of its tasks.
TASK_STATUSES = {"supervisor": ("reported",), "default": ("dispatched", "handled")}
MAX_TASKS = 200
# A worker script's own CSP governs the worker: it may fetch from the app, nothing else.
WORKER_CSP = "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:"


class NavOut(BaseModel):
    """Links handing navigation to the phone's map apps, with the converted points."""

    geo: str
    amap: str
    baidu: str
    gcj02: tuple[float, float]
    bd09: tuple[float, float]


class FieldTaskOut(BaseModel):
    """One case to work on in the field."""

    id: int
    case_no: str
    status: str
    category_type: str
    category_code: str
    category_name: str | None
    description: str
    lon: float
    lat: float
    grid_code: str | None
    due_at: dt.datetime | None
    actions: list[str]
    nav: NavOut


class FieldReport(BaseModel):
    """A problem a supervisor found on patrol, at the phone's position (WGS84)."""

    model_config = ConfigDict(extra="forbid")

    category_type: Literal["event", "component"]
    category_code: str = Field(pattern=r"^[0-9]{4}$")
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description="WGS84 longitude")
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="WGS84 latitude")
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000, allow_inf_nan=False,
                                     description="the phone's stated accuracy")
    description: str = Field(default="", max_length=4000)


class FieldReportOut(BaseModel):
    """The case a field report opened."""

    id: int
    case_no: str
    status: str
    grid_code: str | None


class Verification(BaseModel):
    """A supervisor's on-site check of a case reported back as handled (核查)."""

    model_config = ConfigDict(extra="forbid")

    result: Literal["passed", "failed"]
    note: str = Field(default="", max_length=4000)
    lon: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False)
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False)
    acted_at: SaneAwareDatetime | None = Field(default=None, description=(
        "when the phone recorded the check (offline queue); kept if after the report back "
        "and not in the future, else now and flagged"))


class VerificationOut(BaseModel):
    """A recorded check: who, when, where, with what result."""

    id: int
    case_id: int
    verifier: str
    result: str
    note: str
    verified_at: dt.datetime
    lon: float | None
    lat: float | None
    case_status: str


def _categories(session: Any) -> dict[tuple[str, str], str]:
    rows = session.execute(text(
        "SELECT 'event' AS kind, code, name_zh FROM event_categories UNION ALL "
        "SELECT 'component', code, name_zh FROM component_classes ORDER BY 1, 2"))
    return {(r.kind, r.code): r.name_zh for r in rows}


def _task(case: Any, names: dict[tuple[str, str], str], role: str) -> FieldTaskOut:
    label = f"{case.case_no} {names.get((case.category_type, case.category_code), '')}".strip()
    links = navigation_links(case.lon, case.lat, label=label)
    actions = (["verify"] if role == "supervisor"
               else [a for a in case.allowed_actions if a in ("handle", "report")])
    return FieldTaskOut(
        id=case.id, case_no=case.case_no, status=case.status,
        category_type=case.category_type, category_code=case.category_code,
        category_name=names.get((case.category_type, case.category_code)),
        description=case.description, lon=case.lon, lat=case.lat, grid_code=case.grid_code,
        due_at=case.current_due_at, actions=actions, nav=NavOut(**vars(links)))


@router.get("/field/tasks", response_model=list[FieldTaskOut])
def field_tasks(session: SessionDep, user: FieldUserDep) -> list[FieldTaskOut]:
    """My tasks, nearest deadline first (a grid owner's are limited to their grids)."""
    statuses = TASK_STATUSES.get(user.role, TASK_STATUSES["default"])
    names = _categories(session)
    found = [case for status in statuses
             for case in case_service.list_cases(session, status=status, limit=MAX_TASKS)]
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    found.sort(key=lambda c: (c.current_due_at or far, c.id))
    return [_task(c, names, user.role) for c in found[:MAX_TASKS]]


@router.post("/field/reports", status_code=201, response_model=FieldReportOut,
             dependencies=[IdempotentDep])
def report_problem(body: FieldReport, session: SessionDep,
                   user: SupervisorDep) -> FieldReportOut:
    """A supervisor reports a new problem where they stand (channel patrol, WGS84)."""
    note = body.description
    if body.accuracy_m is not None:
        note = f"{note}（定位精度约 {body.accuracy_m:.0f} 米）".strip()
    case = case_service.create_case(
        session, category_type=body.category_type, category_code=body.category_code,
        channel="patrol", x=body.lon, y=body.lat, crs="wgs84",
        reported_at=dt.datetime.now(dt.UTC), actor=user.username, description=note)
    session.commit()
    return FieldReportOut(id=case.id, case_no=case.case_no, status=case.status,
                          grid_code=case.grid_code)


CaseId = Annotated[int, Path(ge=1, description="case id")]


@router.post("/field/cases/{case_id}/verify", status_code=201, response_model=VerificationOut,
             dependencies=[IdempotentDep])
def verify_case(case_id: CaseId, body: Verification, session: SessionDep,
                user: SupervisorDep) -> VerificationOut:
    """Record an on-site check of a case reported back; the centre then closes or reworks."""
    case = case_service.get_case(session, case_id)
    if case.status != "reported":
        raise ConflictError(f"case {case.case_no} is {case.status!r}; only a case reported "
                            f"back as handled ('reported') can be verified")
    point = body.lon is not None and body.lat is not None
    now = dt.datetime.now(dt.UTC)
    settled = (None if body.acted_at is None
               else acted_at.settle(session, case_id, body.acted_at, now=now))
    row = session.execute(text(
        "INSERT INTO case_verifications (case_id, verifier, result, note, geom, case_status, "
        "verified_at) "
        "VALUES (:c, :v, :r, :n, CASE WHEN :p THEN ST_SetSRID(ST_MakePoint(:x, :y), 4326) END, "
        ":s, :at) RETURNING id"),
        {"c": case_id, "v": user.username, "r": body.result, "n": body.note, "p": point,
         "x": body.lon, "y": body.lat, "s": case.status,
         "at": settled.at if settled else now}).scalar_one()
    if settled is not None:
        acted_at.record(session, settled, case_id=case_id, actor=user.username,
                        verification_id=row)
    # The desk hears of the check live, in the same transaction as the row.
    session.execute(text("SELECT pg_notify('citygrid_cases', :m)"), {"m": json.dumps({
        "case_id": case.id, "case_no": case.case_no, "status": case.status,
        "action": "verify", "grid_code": case.grid_code,
        "at": dt.datetime.now(dt.UTC).isoformat(), "result": body.result})})
    session.commit()
    return _verifications(session, case_id, only=row)[0]


def _verifications(session: Any, case_id: int, *, only: int | None = None
                   ) -> list[VerificationOut]:
    rows = session.execute(text(
        "SELECT id, case_id, verifier, result, note, verified_at, ST_X(geom) AS lon, "
        "ST_Y(geom) AS lat, case_status FROM case_verifications WHERE case_id = :c "
        "AND (CAST(:o AS bigint) IS NULL OR id = :o) ORDER BY id"),
        {"c": case_id, "o": only}).mappings()
    return [VerificationOut(**r) for r in rows]


@router.get("/field/cases/{case_id}/verifications", response_model=list[VerificationOut])
def case_verifications(case_id: CaseId, session: SessionDep,
                       user: StaffDep) -> list[VerificationOut]:
    """The on-site checks of a case, oldest first: what the centre reads before closing."""
    case_service.get_case(session, case_id)  # 404 for an unknown (or, by RLS, foreign) case
    return _verifications(session, case_id)


@router.get("/field", response_class=HTMLResponse, summary="城管通 (field app)")
def field(request: Request, session: SessionDep, user: FieldUserDep) -> HTMLResponse:
    """The phone page: tasks by deadline, map, navigation, reports with an offline queue."""
    categories = [{"type": kind, "code": code, "name": name}
                  for (kind, code), name in _categories(session).items()]
    html = field_page(role=user.role, username=user.username,
                      display_name=user.display_name or user.username,
                      role_label=ROLE_LABELS_ZH.get(user.role, user.role),
                      categories=categories,
                      # signed in by the login cookie (a person), not a bearer header
                      worker=request.headers.get("Authorization") is None)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


# Manifest, icon and worker are staff-only like every internal route (the page links the
# manifest with crossorigin="use-credentials" so the browser sends the login cookie).
@router.get("/field/manifest.webmanifest", include_in_schema=False, dependencies=[staff_only])
def manifest() -> Response:
    """The web app manifest."""
    return Response(json.dumps(field_manifest(), ensure_ascii=False),
                    media_type="application/manifest+json")


@router.get("/field/icon.svg", include_in_schema=False, dependencies=[staff_only])
def icon() -> Response:
    """The app icon."""
    return Response(FIELD_ICON_SVG, media_type="image/svg+xml",
                    headers={"Cache-Control": "max-age=86400"})


@router.get("/field-sw.js", include_in_schema=False, dependencies=[staff_only])
def worker() -> Response:
    """The service worker: caches the app shell, the last task list, lets writes through."""
    return Response(service_worker(), media_type="text/javascript", headers={
        "Cache-Control": "no-cache", "Content-Security-Policy": WORKER_CSP,
        "Service-Worker-Allowed": "/field"})
