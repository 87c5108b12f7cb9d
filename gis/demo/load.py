"""Write the demo city to PostGIS: one transaction, COPY for speed, idempotent.

The city is 历下区 (370102) and its lighter neighbours 市中区 and 天桥区 (gis.demo.neighbours).
`load_demo` does nothing when every demo district is already there (unless `force`), adds only
the missing ones otherwise (a database loaded before the neighbours came gets them, 历下区's
rows untouched), never touches rows outside the demo (see `DEMO_ROWS`), and with `force`
replaces only the demo's own rows: user rows that pointed at a demo grid or community are
re-linked to the new ones.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import shapely
from rich.progress import Progress
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gis.access.audit import record_bulk
from gis.demo import DEFAULT_SEED, DISTRICT_CODE, METRIC_EPSG, STORAGE_EPSG
from gis.demo.addresses import write_demo_addresses
from gis.demo.case_history import rule_lookup_from
from gis.demo.city import DemoCity, generate_city, to_storage
from gis.demo.neighbours import CASE_PREFIXES, DEMO_DISTRICTS, generate_neighbour
from gis.dispatch.deadlines import find_rule
from gis.platform.errors import ConflictError
from gis.platform.partitions import ensure_span
from gis.platform.settings import CitySettings
from gis.zones.demo_sites import add_demo_sites


def _district_rows(code: str) -> dict[str, str]:
    """Which rows of each table belong to one demo district (codes are digits: no quoting)."""
    inside = f"ST_Intersects(geom, (SELECT geom FROM districts WHERE code = '{code}'))"
    return {
        "districts": f"code = '{code}'",
        "subdistricts": f"simulated AND code LIKE '{code}%'",
        "communities": f"simulated AND code LIKE '{code}%'",
        "grid_cells": f"simulated AND code LIKE '{code}%'",
        "grid_owners": ("grid_code IN (SELECT code FROM grid_cells WHERE simulated "
                        f"AND code LIKE '{code}%')"),
        "roads": f"simulated AND {inside}",
        "streetlights": f"simulated AND code LIKE '{code}0118%'",
        "manhole_covers": f"simulated AND code LIKE '{code}%'",
        "stations": f"simulated AND code LIKE 'ST-{code}%'",
        "facilities": f"simulated AND {inside}",
        "stall_zones": f"simulated AND district_code = '{code}'",
        "cases": f"simulated AND case_no LIKE '{CASE_PREFIXES[code]}%' AND {inside}",
        "sensitive_sites": f"simulated AND {inside}",
        "road_aliases": "simulated",
        "compounds": f"simulated AND {inside}",
        "doorplates": f"simulated AND {inside}",
    }


def demo_rows(districts: Sequence[str] = DEMO_DISTRICTS) -> dict[str, str]:
    """Which rows belong to the demo districts, per table: counted, and what `force` deletes."""
    per = [_district_rows(code) for code in districts]
    return {table: " OR ".join(f"({rows[table]})" for rows in per) for table in per[0]}


# The whole demo city's rows, per table.
DEMO_ROWS: dict[str, str] = demo_rows()
# User rows that may point at demo grids (table, key column, reference column).
_GRID_REFERENCES = [("streetlights", "code"), ("manhole_covers", "code"), ("cases", "id")]


def demo_counts(conn: Connection,
                districts: Sequence[str] = DEMO_DISTRICTS) -> dict[str, int]:
    """Rows of each table that belong to the demo city (or to some of its districts)."""
    return {table: int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}"))
                       .scalar_one()) for table, where in demo_rows(districts).items()}


def load_demo(engine: Engine, *, seed: int = DEFAULT_SEED, progress: bool = True,
              force: bool = False, now: pd.Timestamp | None = None,
              districts: Sequence[str] = DEMO_DISTRICTS) -> dict[str, int]:
    """Load the demo city (Jinan 历下区 and its neighbours) in one transaction; returns rows
    written per table (or, when all were there already, the demo's rows per table).

    Case history runs up to `now` (default: the moment of loading)."""
    with _progress(progress) as bar, engine.begin() as conn:
        # Two loaders at once would both see an empty database; the second waits here.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('citygrid.demo'))"))
        present = set(conn.execute(text("SELECT code FROM districts WHERE code = ANY(:c)"),
                                   {"c": list(districts)}).scalars())
        todo = list(districts) if force else [d for d in districts if d not in present]
        if not todo:
            return demo_counts(conn, districts)
        # The seed is ~100k rows of simulated data: one BULK audit row says who loaded it,
        # instead of a row-by-row copy of the whole city into the audit log.
        conn.execute(text("SELECT set_config('citygrid.audit', 'off', true)"))
        relink = _delete_demo(conn, demo_rows([d for d in todo if d in present])) \
            if present & set(todo) else {}
        moment = now if now is not None else pd.Timestamp.now(tz="UTC")
        rules = rule_lookup_from(functools.partial(find_rule, Session(bind=conn)))
        codes = _code_tables(conn)
        counts: dict[str, int] = {}
        for district in todo:
            step = bar.add_task(f"generate {district}", total=1) if bar else None
            if district == DISTRICT_CODE:
                city = generate_city(seed, **codes, now=moment, deadline_rule=rules)
                tables = city.tables()
            else:
                tables = generate_neighbour(district, seed, **codes, now=moment,
                                            deadline_rule=rules)
            if bar and step is not None:
                bar.update(step, completed=1)
            if "cases" in tables and len(tables["cases"]):
                # Each month of the history gets its partition before its rows arrive.
                reported = tables["cases"]["reported_at"]
                ensure_span(conn, "cases", reported.min(), reported.max())
            for table, frame in tables.items():
                task = bar.add_task(f"{district} {table}", total=1) if bar else None
                counts[table] = counts.get(table, 0) + _write(conn, table, to_storage(frame))
                if bar and task is not None:
                    bar.update(task, completed=1)
            if district == DISTRICT_CODE:
                counts.update(_lixia_extras(conn, city, seed))
        _relink(conn, relink)
        conn.execute(text("SELECT set_config('citygrid.audit', 'on', true)"))
        record_bulk(conn, actor=f"cli:demo load (seed {seed})", table="*demo*", summary=counts)
        for table in DEMO_ROWS:  # fresh statistics, or the first queries plan for empty tables
            conn.execute(text(f"ANALYZE {table}"))
        return counts


def _lixia_extras(conn: Connection, city: DemoCity, seed: int) -> dict[str, int]:
    """What only 历下区 gets: sensitive sites, doorplates and compounds."""
    # Schools, hospitals, metro exits and fire lanes beside the demo roads, so the
    # planner's distance rules have something to check against.
    sites = add_demo_sites(Session(bind=conn), city=CitySettings(district_code=DISTRICT_CODE),
                           seed=seed)
    counts = {"sensitive_sites": sum(sites.values())}
    counts.update(write_demo_addresses(  # doorplates (门牌) and compounds for geocoding
        conn, roads_m=city.roads, communities_m=city.communities,
        outline_m=city.districts.geometry.iat[0], metric_epsg=METRIC_EPSG, seed=seed))
    return counts


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    with Progress(transient=False) as bar:
        yield bar


def _code_tables(conn: Connection) -> dict[str, dict[str, str]]:
    """Component owners and names, event names: configuration read from the database."""
    classes = conn.execute(text("SELECT code, name_zh, default_owner FROM component_classes"))
    rows = classes.all()
    events = conn.execute(text("SELECT code, name_zh FROM event_categories")).all()
    return {"component_owners": {r.code: r.default_owner or "属地街道办事处" for r in rows},
            "component_names": {r.code: r.name_zh for r in rows},
            "event_names": {r.code: r.name_zh for r in events}}


def _write(conn: Connection, table: str, frame: pd.DataFrame) -> int:
    """COPY `frame` into `table` (geometry as EWKB hex in column geom); returns rows written."""
    if table == "districts":
        return _upsert_district(conn, frame)
    data = pd.DataFrame(frame.drop(columns="geometry", errors="ignore"))
    if "geometry" in frame.columns:
        geoms = shapely.set_srid(np.asarray(frame.geometry.values), STORAGE_EPSG)
        data["geom"] = shapely.to_wkb(geoms, hex=True, include_srid=True)
    buffer = io.StringIO()
    data.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    columns = ", ".join(data.columns)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
    finally:
        cursor.close()
    return len(data)


def _upsert_district(conn: Connection, frame: pd.DataFrame) -> int:
    # The district row may carry user zones; on a forced reload it is updated, not deleted.
    row = frame.iloc[0]
    conn.execute(text("""
        INSERT INTO districts (code, name, source, simulated, geom)
        VALUES (:code, :name, :source, :simulated, ST_GeomFromEWKB(decode(:wkb, 'hex')))
        ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, source = EXCLUDED.source,
            simulated = EXCLUDED.simulated, geom = EXCLUDED.geom
    """), {"code": row["code"], "name": row["name"], "source": row["source"],
           "simulated": bool(row["simulated"]),
           "wkb": shapely.to_wkb(shapely.set_srid(row.geometry, STORAGE_EPSG), hex=True,
                                 include_srid=True)})
    return 1


def _delete_demo(conn: Connection, rows: dict[str, str]) -> dict[str, list[Any]]:
    """Delete the demo's `rows` (not the districts); returns user rows to re-link afterwards."""
    audited = conn.execute(text(f"""
        SELECT (SELECT count(*) FROM case_transitions t JOIN cases c ON c.id = t.case_id
                WHERE c.id IN (SELECT id FROM cases WHERE {rows["cases"]})),
               (SELECT count(*) FROM stall_zone_versions
                WHERE zone_id IN (SELECT id FROM stall_zones WHERE {rows["stall_zones"]}))
    """)).one()
    if audited[0] or audited[1]:
        raise ConflictError(
            f"cannot reload the demo city: {audited[0]} workflow transitions and {audited[1]} "
            "zone versions refer to demo rows, and that history is append-only")
    foreign = conn.execute(text(f"""
        SELECT (SELECT count(*) FROM grid_cells WHERE NOT simulated
                AND community_code IN (SELECT code FROM communities
                                       WHERE {rows["communities"]}))
             + (SELECT count(*) FROM communities WHERE NOT simulated
                AND subdistrict_code IN (SELECT code FROM subdistricts
                                         WHERE {rows["subdistricts"]}))
    """)).scalar_one()
    if foreign:
        raise ConflictError(f"cannot reload the demo city: {foreign} user grid cells or "
                            "communities belong to demo communities or streets")
    demo_grids = f"SELECT code FROM grid_cells WHERE {rows['grid_cells']}"
    relink: dict[str, list[Any]] = {}
    for table, key in _GRID_REFERENCES:
        relink[table] = list(conn.execute(text(
            f"UPDATE {table} SET grid_code = NULL WHERE NOT ({rows[table]}) "
            f"AND grid_code IN ({demo_grids}) RETURNING {key}")).scalars())
    relink["stations"] = list(conn.execute(text(
        f"UPDATE stations SET community_code = NULL WHERE NOT ({rows['stations']}) "
        f"AND community_code IN (SELECT code FROM communities WHERE {rows['communities']}) "
        "RETURNING id")).scalars())
    relink["zone_grids"] = list(conn.execute(text(
        f"DELETE FROM zone_grids WHERE grid_code IN ({demo_grids}) RETURNING zone_id")).scalars())
    # cases.repeat_of is indexed (migration 0006): without it each deleted case cost the FK
    # check a scan of the whole table (50 s for the demo year instead of 1 s).
    for table in ["doorplates", "compounds", "road_aliases",
                  "cases", "streetlights", "manhole_covers", "facilities", "stations",
                  "stall_zones", "sensitive_sites", "roads", "grid_cells", "communities",
                  "subdistricts"]:
        conn.execute(text(f"DELETE FROM {table} WHERE {rows[table]}"))
    return relink


def _relink(conn: Connection, relink: dict[str, list[Any]]) -> None:
    """Point user rows that referred to the old demo grids at the new ones."""
    for table, key in _GRID_REFERENCES:
        if relink.get(table):
            conn.execute(text(f"""
                UPDATE {table} t SET grid_code = g.code FROM grid_cells g
                WHERE t.{key} = ANY(:keys) AND ST_Intersects(g.geom, t.geom)
            """), {"keys": relink[table]})
    if relink.get("stations"):
        conn.execute(text("""
            UPDATE stations s SET community_code = c.code FROM communities c
            WHERE s.id = ANY(:keys) AND ST_Intersects(c.geom, s.geom)
        """), {"keys": relink["stations"]})
    if relink.get("zone_grids"):
        _map_zones_to_grids(conn, "SELECT unnest(CAST(:keys AS integer[]))",
                            {"keys": sorted(set(relink["zone_grids"]))})
    _fill_zone_grids(conn)


def _fill_zone_grids(conn: Connection) -> None:
    """Map each demo stall zone to the unit grids it touches, as the planning module does."""
    _map_zones_to_grids(conn, f"SELECT id FROM stall_zones WHERE {DEMO_ROWS['stall_zones']}")


def _map_zones_to_grids(conn: Connection, zone_ids_sql: str,
                        params: dict[str, Any] | None = None) -> None:
    # Overlaps in the metric CRS, slivers under 1 cm² left out, as gis.zones.checks does.
    conn.execute(text(f"""
        INSERT INTO zone_grids (zone_id, grid_code, overlap_m2)
        SELECT z.id, g.code, o.m2
        FROM stall_zones z JOIN grid_cells g ON ST_Intersects(z.geom, g.geom)
        CROSS JOIN LATERAL (SELECT ST_Area(ST_Intersection(ST_Transform(z.geom, {METRIC_EPSG}),
                                           ST_Transform(g.geom, {METRIC_EPSG}))) AS m2) o
        WHERE z.id IN ({zone_ids_sql}) AND o.m2 > 0.01
        ON CONFLICT DO NOTHING
    """), params or {})
