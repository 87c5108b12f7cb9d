"""Case service: create a complaint case, move it through the workflow, read and list cases.

Every change writes one row to the append-only case_transitions audit. Functions never commit;
the caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch.case_numbers import next_case_no
from gis.dispatch.deadlines import CURRENT_DUE_SQL, compute_due
from gis.dispatch.repeats import (
    DEFAULT_RADIUS_M,
    DEFAULT_SUPERVISE_FROM,
    DEFAULT_WINDOW_DAYS,
    link_repeats,
)
from gis.dispatch.workflow import OPEN_STATUSES, SATISFACTION_VALUES, TRANSITIONS, allowed_actions
from gis.dispatch.workflow import next_status as workflow_next_status
from gis.platform.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    OutsideCityError,
    PermissionDeniedError,
)
from gis.platform.settings import CitySettings

CATEGORY_TYPES = ("event", "component")
CHANNELS = ("hotline_12345", "hotline_12319", "wechat", "patrol", "open311")
RAW_CRS = ("wgs84", "gcj02", "bd09", "cgcs2000")
URGENCIES = ("urgent", "normal")
AREA_TYPES = ("city", "rural")


class RoutedPoint(Protocol):
    """What case creation needs from routing: the point in WGS84 and its unit grid."""

    @property
    def lon(self) -> float:
        """Longitude in WGS84."""

    @property
    def lat(self) -> float:
        """Latitude in WGS84."""

    @property
    def grid_code(self) -> str | None:
        """Unit grid the point was routed to."""


# Called as route(session, x=..., y=..., crs=..., at=..., category_type=..., category_code=...).
RouteFunction = Callable[..., RoutedPoint]


@dataclass(frozen=True)
class LocatedPoint:
    """A point placed without the routing service: WGS84 coordinates and the grid holding it."""

    lon: float
    lat: float
    grid_code: str | None


@dataclass(frozen=True)
class TransitionRecord:
    """One audit row: who moved the case, from which status to which, when and why."""

    id: int
    action: str
    from_status: str | None
    to_status: str
    actor: str
    at: dt.datetime
    note: str


@dataclass(frozen=True)
class Case:
    """A complaint case; `transitions` is filled by get_case and empty in lists."""

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
    urgency: str
    area_type: str
    reported_at: dt.datetime
    dispatch_due_at: dt.datetime | None
    dispatched_at: dt.datetime | None
    due_at: dt.datetime | None
    verify_due_at: dt.datetime | None
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
    current_due_at: dt.datetime | None
    address: str | None = None
    geocode_level: str | None = None
    geocode_score: float | None = None
    snapped: bool = False
    snap_distance_m: float | None = None
    transitions: tuple[TransitionRecord, ...] = ()

    @property
    def is_open(self) -> bool:
        """True until the case is closed, evaluated or rejected."""
        return self.status in OPEN_STATUSES

    @property
    def allowed_actions(self) -> list[str]:
        """Actions the workflow allows next."""
        return allowed_actions(self.status)


_CASE_COLUMNS = f"""c.id, c.case_no, c.category_type, c.category_code, c.channel,
    c.description, c.raw_x, c.raw_y, c.raw_crs, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat,
    c.grid_code, c.status, c.urgency, c.area_type, c.reported_at, c.dispatch_due_at,
    c.dispatched_at, c.due_at, c.verify_due_at, c.due_approximate, c.closed_at,
    c.reworked_count, c.extended_count, c.satisfaction, c.surveyed_at, c.replied_at,
    c.repeat_group_id, c.repeat_of, c.supervised, {CURRENT_DUE_SQL} AS current_due_at,
    c.address, c.geocode_level, c.geocode_score, c.snapped, c.snap_distance_m"""


def create_case(session: Session, *, category_type: str, category_code: str, channel: str,
                x: float, y: float, crs: str = "wgs84", reported_at: dt.datetime, actor: str,
                description: str = "", urgency: str = "normal", area_type: str = "city",
                case_no: str | None = None,
                route: RouteFunction | RoutedPoint | None = None,
                address: str | None = None, geocode_level: str | None = None,
                geocode_score: float | None = None, case_prefix: str | None = None,
                city: CitySettings | None = None,
                repeat_radius_m: float = DEFAULT_RADIUS_M,
                repeat_window_days: int = DEFAULT_WINDOW_DAYS,
                supervise_from: int = DEFAULT_SUPERVISE_FROM,
                simulated: bool = False) -> Case:
    """Record a collected complaint: raw point kept, grid assigned, deadline set, repeats linked.

    The case number is `<prefix><city date><serial of the day>` (next_case_no, migration
    0020) unless `case_no` names one; the prefix is `case_prefix` if given, else that of the
    district the point routes to (`city.case_prefix_for`); a routed point that was snapped to
    its grid is recorded as snapped with the metres.
    """
    _check_choice("category_type", category_type, CATEGORY_TYPES)
    _check_choice("channel", channel, CHANNELS)
    _check_choice("crs", crs, RAW_CRS)
    _check_choice("urgency", urgency, URGENCIES)
    _check_choice("area_type", area_type, AREA_TYPES)
    _check_actor(actor)
    _check_aware("reported_at", reported_at)
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InvalidInputError(f"coordinates ({x}, {y}) must be finite numbers")
    _check_category(session, category_type=category_type, category_code=category_code)

    if route is None:
        point: RoutedPoint = locate_in_grid(session, x=x, y=y, crs=crs)
    elif callable(route):
        point = route(session, x=x, y=y, crs=crs, at=reported_at, category_type=category_type,
                      category_code=category_code)
    else:
        point = route
    _check_district(session, point.grid_code)
    # RouteResult says whether the point lay just outside every grid; LocatedPoint never does.
    snapped = bool(getattr(point, "snapped", False))
    snap_m = float(getattr(point, "snap_distance_m", 0.0) or 0.0)
    dispatch_due = compute_due(session, category_type=category_type,
                               category_code=category_code, urgency=urgency,
                               area_type=area_type, step="dispatch", start=reported_at)

    case_id = session.execute(
        text("SELECT nextval(pg_get_serial_sequence('cases', 'id'))")).scalar_one()
    if case_no is None:
        prefix = case_prefix or (city or CitySettings()).case_prefix_for(point.grid_code)
        case_no = next_case_no(session, reported_at, prefix)
    elif not case_no.strip():
        raise InvalidInputError("case_no must not be blank")
    if session.execute(text("SELECT 1 FROM cases WHERE case_no = :n"), {"n": case_no}).first():
        raise ConflictError(f"case number {case_no!r} already exists")
    session.execute(text("""
        INSERT INTO cases (id, case_no, category_type, category_code, channel, description,
            raw_x, raw_y, raw_crs, reported_at, status, urgency, area_type, grid_code,
            dispatch_due_at, due_approximate, simulated, address, geocode_level, geocode_score,
            snapped, snap_distance_m, geom)
        VALUES (:id, :case_no, :category_type, :category_code, :channel, :description,
            :raw_x, :raw_y, :raw_crs, :reported_at, 'collected', :urgency, :area_type,
            :grid_code, :dispatch_due_at, :due_approximate, :simulated, :address,
            :geocode_level, :geocode_score, :snapped, :snap_distance_m,
            ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"""), {
        "id": case_id, "case_no": case_no, "category_type": category_type,
        "category_code": category_code, "channel": channel, "description": description,
        "raw_x": x, "raw_y": y, "raw_crs": crs, "reported_at": reported_at,
        "urgency": urgency, "area_type": area_type, "grid_code": point.grid_code,
        "dispatch_due_at": dispatch_due.due_at, "due_approximate": dispatch_due.approximate,
        "simulated": simulated, "lon": point.lon, "lat": point.lat,
        "address": address, "geocode_level": geocode_level, "geocode_score": geocode_score,
        "snapped": snapped, "snap_distance_m": round(snap_m, 2) if snapped else None})
    _record(session, case_id=case_id, action="collect", from_status=None,
            to_status="collected", actor=actor, at=reported_at, note=description)
    link_repeats(session, case_id=case_id, radius_m=repeat_radius_m,
                 window_days=repeat_window_days, supervise_from=supervise_from)
    return get_case(session, case_id)


def transition(session: Session, case_id: int, action: str, *, actor: str,
               at: dt.datetime | None = None, note: str = "",
               satisfaction: str | None = None,
               extend_to: dt.datetime | None = None) -> Case:
    """Apply a workflow action to a case and audit it; refused actions change nothing."""
    _check_actor(actor)
    at = at or dt.datetime.now(dt.UTC)
    _check_aware("at", at)
    row = session.execute(text("""
        SELECT c.status, c.due_at, c.replied_at, c.case_no,
               (SELECT max(t.at) FROM case_transitions t WHERE t.case_id = c.id) AS last_at
        FROM cases c WHERE c.id = :id FOR UPDATE"""), {"id": case_id}).mappings().first()
    if row is None:
        raise NotFoundError(f"case {case_id} does not exist")
    status = row["status"]
    label = f"case {row['case_no']}"  # messages cite the case number, never the internal id
    try:
        to_status = workflow_next_status(status, action)
    except (InvalidInputError, ConflictError) as exc:
        raise type(exc)(f"{label}: {exc}") from None
    if TRANSITIONS[action].needs_note and not note.strip():
        raise InvalidInputError(f"{action} of {label} needs a reason in `note`")
    if satisfaction is not None and action != "evaluate":
        raise InvalidInputError(f"satisfaction {satisfaction!r} only goes with 'evaluate', "
                                f"not {action!r}")
    if extend_to is not None and action != "extend":
        raise InvalidInputError(f"extend_to only goes with 'extend', not {action!r}")
    if row["last_at"] is not None and at < row["last_at"]:
        raise InvalidInputError(f"{action} at {at.isoformat()} is before the last step of "
                                f"{label} at {row['last_at'].isoformat()}")

    changes: dict[str, Any] = {}
    extension: tuple[dt.datetime, dt.datetime] | None = None
    if action in ("dispatch", "report"):
        changes.update(_deadline_changes(session, case_id=case_id, action=action, at=at))
    elif action == "close":
        changes["closed_at"] = at
    elif action == "evaluate":
        _check_choice("satisfaction", satisfaction, SATISFACTION_VALUES)
        changes.update(satisfaction=satisfaction, surveyed_at=at)
    elif action == "reply":
        if row["replied_at"] is not None:
            raise ConflictError(f"{label} was already replied to at "
                                f"{row['replied_at'].isoformat()}")
        changes["replied_at"] = at
    elif action == "extend":
        extension = _check_extension(label, due_at=row["due_at"], extend_to=extend_to, at=at)
        changes["due_at"] = extension[1]

    counters = {"rework": "reworked_count", "extend": "extended_count"}
    assignments = [f"{column} = :{column}" for column in changes]
    if action in counters:
        assignments.append(f"{counters[action]} = {counters[action]} + 1")
    # Column names come from the code above, never from the request.
    session.execute(text(f"UPDATE cases SET {', '.join(['status = :status', *assignments])} "
                         "WHERE id = :id"), {**changes, "status": to_status, "id": case_id})
    transition_id = _record(session, case_id=case_id, action=action, from_status=status,
                            to_status=to_status, actor=actor, at=at, note=note)
    if extension is not None:
        session.execute(text("""
            INSERT INTO case_extensions (case_id, transition_id, previous_due_at, new_due_at,
                reason)
            VALUES (:case_id, :transition_id, :previous, :new, :reason)"""),
            {"case_id": case_id, "transition_id": transition_id, "previous": extension[0],
             "new": extension[1], "reason": note})
    return get_case(session, case_id)


def resolve_case_id(session: Session, reference: str) -> int:
    """Id of the case `reference` names: its numeric id, else its case number.

    The case number is the Open311 service_request_id, so a request a resident was given can
    be looked up by staff as it is. An id wins over a case number of the same digits (ids are
    small; case numbers start with letters, LX202612030001).
    """
    if reference.isascii() and reference.isdigit() and int(reference) < 2**63:
        found = session.execute(text("SELECT id FROM cases WHERE id = :id"),
                                {"id": int(reference)}).scalar()
        if found is not None:
            return int(found)
    # A case renumbered by migration 0020 is still found by the number it was given before.
    found = session.execute(text("SELECT id FROM cases WHERE case_no = :n "
                                 "OR former_case_no = :n ORDER BY former_case_no NULLS FIRST "
                                 "LIMIT 1"), {"n": reference}).scalar()
    if found is None:
        raise NotFoundError(f"case {reference!r} does not exist (neither a case id nor a "
                            "case number)")
    return int(found)


def get_case(session: Session, case_id: int) -> Case:
    """One case with its full transition history, oldest first."""
    row = session.execute(text(f"SELECT {_CASE_COLUMNS} FROM cases c WHERE c.id = :id"),
                          {"id": case_id}).mappings().first()
    if row is None:
        raise NotFoundError(f"case {case_id} does not exist")
    history = session.execute(text("""
        SELECT id, action, from_status, to_status, actor, at, note
        FROM case_transitions WHERE case_id = :id ORDER BY at, id"""),
        {"id": case_id}).mappings().all()
    return Case(**row, transitions=tuple(TransitionRecord(**h) for h in history))


def list_cases(session: Session, *, status: str | None = None, overdue: bool | None = None,
               at: dt.datetime | None = None, grid_code: str | None = None,
               supervised: bool | None = None,
               bbox: tuple[float, float, float, float] | None = None, limit: int = 100,
               offset: int = 0) -> list[Case]:
    """Cases filtered by status, overdue-ness at `at` (default now), grid, 重点督办 flag, bbox."""
    conditions = ["true"]
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if status is not None:
        _check_choice("status", status, (*OPEN_STATUSES, "closed", "evaluated", "rejected"))
        conditions.append("c.status = :status")
        params["status"] = status
    if overdue is not None:
        params["at"] = at or dt.datetime.now(dt.UTC)
        _check_aware("at", params["at"])
        test = f"coalesce({CURRENT_DUE_SQL} < :at, false)"
        conditions.append(test if overdue else f"NOT {test}")
    if grid_code is not None:
        conditions.append("c.grid_code = :grid_code")
        params["grid_code"] = grid_code
    if supervised is not None:
        conditions.append("c.supervised = :supervised")
        params["supervised"] = supervised
    if bbox is not None:
        # ST_Intersects uses the GiST index and then tests exactly: && alone compares float4
        # boxes and lets in points a few centimetres outside the bbox.
        conditions.append("ST_Intersects(c.geom, ST_MakeEnvelope(:x1, :y1, :x2, :y2, 4326))")
        params.update(zip(("x1", "y1", "x2", "y2"), bbox, strict=True))
    if limit < 1 or offset < 0:
        raise InvalidInputError(f"limit {limit} must be >= 1 and offset {offset} >= 0")
    rows = session.execute(text(f"""
        SELECT {_CASE_COLUMNS} FROM cases c WHERE {' AND '.join(conditions)}
        ORDER BY {CURRENT_DUE_SQL} NULLS LAST, c.reported_at, c.id
        LIMIT :limit OFFSET :offset"""), params).mappings().all()
    return [Case(**row) for row in rows]


def locate_in_grid(session: Session, *, x: float, y: float, crs: str) -> LocatedPoint:
    """Place a WGS84/CGCS2000 point in the unit grid containing it (lowest code on an edge)."""
    if crs not in ("wgs84", "cgcs2000"):
        # GCJ-02 / BD-09 need the offset algorithms that live with routing.
        raise InvalidInputError(f"crs {crs!r} needs the routing service to convert "
                                "coordinates; only wgs84 and cgcs2000 are placed directly")
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        raise InvalidInputError(f"point ({x}, {y}) is not a lon/lat pair in {crs}")
    # CGCS2000 and WGS84 agree to ~10 cm here, so no datum shift is applied.
    grid_code = session.execute(text("""
        SELECT code FROM grid_cells
        WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326))
        ORDER BY code LIMIT 1"""), {"x": x, "y": y}).scalar()
    if grid_code is None:
        raise OutsideCityError(f"point ({x}, {y}) in {crs} lies in no unit grid")
    return LocatedPoint(lon=x, lat=y, grid_code=grid_code)


def _deadline_changes(session: Session, *, case_id: int, action: str,
                      at: dt.datetime) -> dict[str, Any]:
    kind = session.execute(text("""
        SELECT category_type, category_code, urgency, area_type, due_approximate
        FROM cases WHERE id = :id"""), {"id": case_id}).mappings().one()
    step = "handle" if action == "dispatch" else "verify"
    deadline = compute_due(session, category_type=kind["category_type"],
                           category_code=kind["category_code"], urgency=kind["urgency"],
                           area_type=kind["area_type"], step=step, start=at)
    changes: dict[str, Any] = {"due_approximate": kind["due_approximate"] or deadline.approximate}
    if action == "dispatch":
        changes.update(dispatched_at=at, due_at=deadline.due_at)
    else:
        changes["verify_due_at"] = deadline.due_at
    return changes


def _check_extension(label: str, *, due_at: dt.datetime | None, extend_to: dt.datetime | None,
                     at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    if due_at is None:
        raise ConflictError(f"{label} has no handling deadline to extend")
    if extend_to is None:
        raise InvalidInputError(f"extension of {label} needs `extend_to`, the new due time")
    _check_aware("extend_to", extend_to)
    if extend_to <= due_at:
        raise InvalidInputError(f"extend_to {extend_to.isoformat()} must be after the current "
                                f"due time {due_at.isoformat()} of {label}")
    # 延期 is requested within the time limit; an overdue case stays overdue.
    if at > due_at:
        raise ConflictError(f"{label} was due at {due_at.isoformat()}; an extension "
                            f"asked at {at.isoformat()} comes too late")
    return due_at, extend_to


def _record(session: Session, *, case_id: int, action: str, from_status: str | None,
            to_status: str, actor: str, at: dt.datetime, note: str) -> int:
    transition_id: int = session.execute(text("""
        INSERT INTO case_transitions (case_id, action, from_status, to_status, actor, at, note)
        VALUES (:case_id, :action, :from_status, :to_status, :actor, :at, :note)
        RETURNING id"""), {"case_id": case_id, "action": action, "from_status": from_status,
                           "to_status": to_status, "actor": actor.strip(), "at": at,
                           "note": note}).scalar_one()
    return transition_id


def _check_category(session: Session, *, category_type: str, category_code: str) -> None:
    table = "event_categories" if category_type == "event" else "component_classes"
    # `table` is one of two literals chosen above.
    found = session.execute(text(f"SELECT 1 FROM {table} WHERE code = :code"),
                            {"code": category_code}).first()
    if found is None:
        raise InvalidInputError(f"unknown {category_type} category {category_code!r} "
                                f"(not in {table})")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(f"{name} {value!r} is not one of {', '.join(choices)}")


def _check_district(session: Session, grid_code: str | None) -> None:
    """A district sub-centre takes complaints located in its own district only.

    Migration 0028's policy on cases would refuse the row anyway; this names the reason (403)
    instead of a database error."""
    district = session.execute(text("SELECT citygrid_actor_district()")).scalar()
    if district and (grid_code or "")[:6] != district:
        raise PermissionDeniedError(
            f"the complaint lies in grid {grid_code!r}, outside district {district} of the "
            "signed-in user; the city centre or that district's sub-centre takes it")


def _check_actor(actor: str) -> None:
    if not actor or not actor.strip():
        raise InvalidInputError("actor must name who acts on the case, not be blank")


def _check_aware(name: str, moment: dt.datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError(f"{name} {moment.isoformat()} has no time zone; "
                                "give an offset such as +08:00")
