"""Create, update, approve and retire stall zones; every change writes a new kept version.

Lifecycle: draft → approved → retired. Editing an approved zone makes the edit a draft again
(the new shape or hours have not been reviewed); a retired zone is final. Every write runs the
rules first and stores nothing when one fails. Writes take one advisory lock so two planners
cannot both pass the overlap check with zones that clash. Nothing here commits.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.platform.errors import ConflictError, InvalidInputError, NotFoundError
from gis.platform.settings import CitySettings
from gis.zones.checks import ZoneCheck, check_geometry, check_zone
from gis.zones.errors import ZoneRulesError
from gis.zones.rules import ZoneRules
from gis.zones.schema import ZoneInput, parse_zone_feature

_LOCK_KEY = "citygrid.stall_zones"
_COLUMNS = ("id, name, zone_type, district_code, time_slots, seasons, capacity, operator, "
            "status, simulated, version, updated_at")


def check_feature(session: Session, *, feature: Any, rules: ZoneRules, city: CitySettings,
                  zone_id: int | None = None) -> tuple[ZoneInput, str, ZoneCheck]:
    """Parse a zone Feature and run every rule; invalid input raises, violations are returned."""
    props, polygon = parse_zone_feature(feature, max_vertices=rules.geometry.max_vertices)
    wkb = check_geometry(session, polygon=polygon, city=city)
    result = check_zone(session, wkb=wkb, capacity=props.capacity,
                        time_slots=props.slots_json(), seasons=props.seasons_json(),
                        rules=rules, city=city, district_code=props.district_code,
                        zone_id=zone_id)
    return props, wkb, result


def create_zone(session: Session, *, feature: Any, changed_by: str, rules: ZoneRules,
                city: CitySettings) -> dict[str, Any]:
    """Store a new draft zone (version 1) if it passes every rule; ZoneRulesError otherwise."""
    _lock(session)
    props, wkb, result = check_feature(session, feature=feature, rules=rules, city=city)
    if not result.passed:
        raise ZoneRulesError([v.to_feature() for v in result.violations])
    zone_id = session.execute(text("""
        INSERT INTO stall_zones (name, zone_type, district_code, time_slots, seasons, capacity,
                                 operator, status, simulated, geom)
        VALUES (:name, :zone_type, :district_code, CAST(:slots AS jsonb),
                CAST(:seasons AS jsonb), :capacity, :operator, 'draft', :simulated,
                ST_SetSRID(CAST(:wkb AS geometry), 4326))
        RETURNING id
    """), {**_values(props), "district_code": result.district_code, "wkb": wkb}).scalar_one()
    _assign_grids(session, zone_id=zone_id, grids=result.grids)
    _record(session, zone_id=zone_id, action="create", changed_by=changed_by)
    return get_zone(session, zone_id=zone_id)


def update_zone(session: Session, *, zone_id: int, feature: Any, changed_by: str,
                rules: ZoneRules, city: CitySettings,
                base_version: int | None = None) -> dict[str, Any]:
    """Store a new version of a zone (back to draft); `base_version` guards lost updates."""
    _lock(session)
    current = _current(session, zone_id=zone_id)
    if current["status"] == "retired":
        raise ConflictError(f"zone {zone_id} is retired; draw a new zone instead")
    if base_version is not None and base_version != current["version"]:
        raise ConflictError(f"zone {zone_id} is at version {current['version']}, not "
                            f"{base_version}: someone changed it meanwhile; reload and retry")
    props, wkb, result = check_feature(session, feature=feature, rules=rules, city=city,
                                       zone_id=zone_id)
    if not result.passed:
        raise ZoneRulesError([v.to_feature() for v in result.violations])
    session.execute(text("""
        UPDATE stall_zones SET name = :name, zone_type = :zone_type,
               district_code = :district_code, time_slots = CAST(:slots AS jsonb),
               seasons = CAST(:seasons AS jsonb), capacity = :capacity, operator = :operator,
               status = 'draft', simulated = :simulated,
               geom = ST_SetSRID(CAST(:wkb AS geometry), 4326),
               version = version + 1, updated_at = now()
        WHERE id = :id
    """), {**_values(props), "district_code": result.district_code, "wkb": wkb, "id": zone_id})
    _assign_grids(session, zone_id=zone_id, grids=result.grids)
    _record(session, zone_id=zone_id, action="update", changed_by=changed_by)
    return get_zone(session, zone_id=zone_id)


def approve_zone(session: Session, *, zone_id: int, changed_by: str, rules: ZoneRules,
                 city: CitySettings) -> dict[str, Any]:
    """Approve a draft after checking it again (rules or neighbours may have changed)."""
    _lock(session)
    current = _current(session, zone_id=zone_id)
    if current["status"] != "draft":
        raise ConflictError(f"zone {zone_id} is {current['status']}; only drafts are approved")
    wkb = session.execute(text("SELECT ST_AsHEXEWKB(ST_Force2D(geom), 'NDR') FROM stall_zones "
                               "WHERE id = :id"), {"id": zone_id}).scalar_one()
    result = check_zone(session, wkb=wkb, capacity=current["capacity"],
                        time_slots=current["time_slots"], seasons=current["seasons"],
                        rules=rules, city=city, district_code=current["district_code"],
                        zone_id=zone_id)
    if not result.passed:
        raise ZoneRulesError([v.to_feature() for v in result.violations])
    _set_status(session, zone_id=zone_id, status="approved")
    _assign_grids(session, zone_id=zone_id, grids=result.grids)
    _record(session, zone_id=zone_id, action="approve", changed_by=changed_by)
    return get_zone(session, zone_id=zone_id)


def retire_zone(session: Session, *, zone_id: int, changed_by: str) -> dict[str, Any]:
    """Retire a zone for good; its versions stay."""
    _lock(session)
    current = _current(session, zone_id=zone_id)
    if current["status"] == "retired":
        raise ConflictError(f"zone {zone_id} is already retired")
    _set_status(session, zone_id=zone_id, status="retired")
    _record(session, zone_id=zone_id, action="retire", changed_by=changed_by)
    return get_zone(session, zone_id=zone_id)


def split_zone(session: Session, *, zone_id: int, line: Any, changed_by: str, rules: ZoneRules,
               city: CitySettings) -> list[dict[str, Any]]:
    """Cut a zone along a line into new draft zones; the original is retired, history kept.

    Capacity is shared in proportion to area (largest remainder, so the stalls add up; at
    least one each). Every part runs through all the rules; if any part fails, nothing changes.
    """
    _lock(session)
    current = _current(session, zone_id=zone_id)
    if current["status"] == "retired":
        raise ConflictError(f"zone {zone_id} is retired and cannot be split")
    if not isinstance(line, dict) or line.get("type") != "LineString":
        kind = line.get("type") if isinstance(line, dict) else type(line).__name__
        raise InvalidInputError(f"a split needs a GeoJSON LineString, got {kind!r}")
    parts = session.execute(text("""
        SELECT ST_AsGeoJSON(d.geom, 8) AS geometry, ST_Area(d.geom::geography) AS area
        FROM stall_zones z,
             ST_Dump(ST_Split(z.geom, ST_SetSRID(ST_GeomFromGeoJSON(:line), 4326))) AS d
        WHERE z.id = :id AND GeometryType(d.geom) = 'POLYGON'
        ORDER BY ST_XMin(d.geom), ST_YMin(d.geom)
    """), {"id": zone_id, "line": json.dumps(line)}).mappings().all()
    if len(parts) < 2:
        raise InvalidInputError(f"the line does not cut zone {zone_id} in two: draw it across "
                                "the zone from one edge to another")
    capacities = _apportion(current["capacity"], [p["area"] for p in parts])
    _set_status(session, zone_id=zone_id, status="retired")
    _record(session, zone_id=zone_id, action="retire", changed_by=changed_by)
    created = []
    for n, part in enumerate(parts, 1):
        props = {k: current[k] for k in ("zone_type", "time_slots", "seasons", "operator",
                                         "simulated")}
        props["name"] = f"{current['name']}-{n}"
        props["capacity"] = capacities[n - 1]
        props["district_code"] = current["district_code"].strip()
        feature = {"type": "Feature", "properties": props,
                   "geometry": json.loads(part["geometry"])}
        created.append(create_zone(session, feature=feature, changed_by=changed_by,
                                   rules=rules, city=city))
    return created


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Split `total` in proportion to `weights` by largest remainder, at least 1 each."""
    shares = [total * w / sum(weights) for w in weights]
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return [max(1, c) for c in counts]


def get_zone(session: Session, *, zone_id: int) -> dict[str, Any]:
    """The current version of a zone as a GeoJSON Feature with its grid codes."""
    row = session.execute(text(f"""
        SELECT {_COLUMNS}, ST_AsGeoJSON(geom, 8) AS geometry,
               ARRAY(SELECT grid_code FROM zone_grids g WHERE g.zone_id = z.id
                     ORDER BY grid_code) AS grid_codes
        FROM stall_zones z WHERE id = :id
    """), {"id": zone_id}).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"stall zone {zone_id} does not exist")
    return zone_feature(dict(row))


def zone_versions(session: Session, *, zone_id: int) -> list[dict[str, Any]]:
    """Every version of a zone, oldest first, each a GeoJSON Feature."""
    # A read takes no row lock: FOR UPDATE needs UPDATE, which a grid owner's role lacks.
    _current(session, zone_id=zone_id, lock=False)
    rows = session.execute(text("""
        SELECT zone_id AS id, version, action, name, zone_type, district_code, time_slots,
               seasons, capacity, operator, status, simulated, grid_codes, changed_by,
               changed_at, ST_AsGeoJSON(geom, 8) AS geometry
        FROM stall_zone_versions WHERE zone_id = :id ORDER BY version
    """), {"id": zone_id}).mappings().all()
    return [zone_feature(dict(r)) for r in rows]


def zone_feature(row: dict[str, Any]) -> dict[str, Any]:
    """A zone row (with a GeoJSON `geometry` text column) as a Feature."""
    geometry = json.loads(row.pop("geometry"))
    zone_id = row.pop("id")
    for key in ("updated_at", "changed_at"):
        if row.get(key) is not None:
            row[key] = row[key].isoformat()
    if row.get("district_code") is not None:
        row["district_code"] = row["district_code"].strip()
    return {"type": "Feature", "id": zone_id, "geometry": geometry,
            "properties": {"id": zone_id, **row}}


def _current(session: Session, *, zone_id: int, lock: bool = True) -> dict[str, Any]:
    row = session.execute(text(f"SELECT {_COLUMNS} FROM stall_zones WHERE id = :id"
                               + (" FOR UPDATE" if lock else "")),
                          {"id": zone_id}).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"stall zone {zone_id} does not exist")
    return dict(row)


def _lock(session: Session) -> None:
    # Released at commit or rollback: the overlap check and the write are one step.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _LOCK_KEY})


def _values(props: ZoneInput) -> dict[str, Any]:
    return {"name": props.name, "zone_type": props.zone_type,
            "slots": json.dumps(props.slots_json()), "seasons": json.dumps(props.seasons_json()),
            "capacity": props.capacity, "operator": props.operator,
            "simulated": props.simulated}


def _set_status(session: Session, *, zone_id: int, status: str) -> None:
    session.execute(text("UPDATE stall_zones SET status = :status, version = version + 1, "
                         "updated_at = now() WHERE id = :id"), {"status": status, "id": zone_id})


def _assign_grids(session: Session, *, zone_id: int, grids: list[tuple[str, float]]) -> None:
    session.execute(text("DELETE FROM zone_grids WHERE zone_id = :id"), {"id": zone_id})
    if grids:
        session.execute(text("INSERT INTO zone_grids (zone_id, grid_code, overlap_m2) "
                             "VALUES (:id, :code, :m2)"),
                        [{"id": zone_id, "code": c, "m2": m2} for c, m2 in grids])


def _record(session: Session, *, zone_id: int, action: str, changed_by: str) -> None:
    session.execute(text("""
        INSERT INTO stall_zone_versions (zone_id, version, action, name, zone_type,
            district_code, time_slots, seasons, capacity, operator, status, simulated,
            grid_codes, changed_by, changed_at, geom)
        SELECT id, version, :action, name, zone_type, district_code, time_slots, seasons,
               capacity, operator, status, simulated,
               ARRAY(SELECT grid_code FROM zone_grids g WHERE g.zone_id = z.id
                     ORDER BY grid_code),
               :changed_by, updated_at, geom
        FROM stall_zones z WHERE id = :id
    """), {"id": zone_id, "action": action, "changed_by": changed_by.strip() or "unknown"})
