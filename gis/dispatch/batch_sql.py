"""Batch routing, the SQL: temporary tables, the set-based routing steps and the final join.

Run by gis.dispatch.batch_postgis on one chunk of points at a time; the comments say why each
statement has the shape it has (measured at 1M points).
"""

from __future__ import annotations

from gis.dispatch.routing import (
    _KNN_CANDIDATES,
)

# Columns ROUTE_SQL returns (needed to shape an empty result when no row is routable).
ROUTED_FIELDS = ["idx", "code", "dist", "snapped", "community_code", "community_name",
                  "subdistrict_name", "owner_name", "owner_kind", "owner_phone", "station_code",
                  "station_name", "station_m", "comp_code", "comp_owner", "comp_class", "comp_m",
                  "other_code", "other_m", "zone_ids"]

# Points arrive by binary COPY in a spatial (Morton) order, so that index pages and heap pages
# of neighbouring points are neighbours too: with the default 8 MB of temp_buffers a 1M-row
# temporary table in input order is read back and forth from disk by the polygon probes below
# (measured: 44 s instead of 3 s for the containment join at 1M points / 90k cells).
# The point geometry is a generated column: no UPDATE, so no second version of every row.
POINTS_TABLE = """
CREATE TEMP TABLE route_points (
    idx integer NOT NULL, lon float8 NOT NULL, lat float8 NOT NULL, day date NOT NULL,
    g geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED
) ON COMMIT DROP
"""
# The few rows that name a component or a component category: only they need the link search.
COMPONENTS_TABLE = """
CREATE TEMP TABLE route_components (
    idx integer PRIMARY KEY, lon float8 NOT NULL, lat float8 NOT NULL, comp_class char(4),
    comp_code char(16),
    g geometry(Point, 4326) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED
) ON COMMIT DROP
"""
TEMP_TABLES = ("route_linked", "route_zones", "route_near", "route_stations", "route_voronoi",
                "route_hits", "route_components", "route_points")

# Containment, station and stall zone are joined from the few big side (grid cells, station
# Voronoi cells, zones) into a GiST index on the points: each polygon is probed once and
# PostGIS reuses its prepared form for all the points it holds, instead of one index probe per
# point (a GiST probe costs ~30 us here: 1M probes are 30 s, 90k probes ~3 s). The LATERAL ...
# OFFSET 0 keeps the polygons outside: at 1M points the planner otherwise turns the join round
# (measured 50 s instead of 2.5 s for the containing grid). The station Voronoi diagram is
# built in the metric CRS so "nearest" means metres, and densified to 100 m before going back
# to degrees so its edges stay true; it reaches 20 km past the stations, beyond that a KNN
# takes over. Temporary tables are never scanned by parallel workers, so these joins run on
# one core whatever max_parallel_workers_per_gather says. Each search that only a few points
# need (snapping, station KNN, components) runs on those points alone, so that the final
# query is nothing but hash joins on idx.
PREPARE_SQL: list[tuple[str, str]] = [
    ("settings", "SET LOCAL jit = off"),  # compiling these plans costs more than it saves
    ("settings", "SET LOCAL work_mem = '128MB'"),  # the 1M-row sorts and hashes stay in memory
    ("points index", "CREATE INDEX route_points_g ON route_points USING gist (g)"),
    ("points index", "ANALYZE route_points"),
    ("containing grid", """CREATE TEMP TABLE route_hits ON COMMIT DROP AS
       SELECT DISTINCT ON (p.idx) p.idx, c.code, 0.0::float8 AS dist, false AS snapped
       FROM grid_cells c
       CROSS JOIN LATERAL (SELECT idx FROM route_points WHERE ST_Intersects(c.geom, g)
                           OFFSET 0) p
       ORDER BY p.idx, c.code"""),
    ("snapped grid", f"""INSERT INTO route_hits
       SELECT p.idx, k.code, k.dist, true FROM route_points p
       CROSS JOIN LATERAL (
           SELECT n.code, ST_Distance(n.geom::geography, p.g::geography) AS dist
           FROM (SELECT code, geom FROM grid_cells
                 ORDER BY geom <-> p.g LIMIT {_KNN_CANDIDATES}) n
           ORDER BY 2, 1 LIMIT 1) k
       WHERE NOT EXISTS (SELECT FROM route_hits h WHERE h.idx = p.idx)"""),
    ("analyze", "ANALYZE route_hits"),
    ("station voronoi", """CREATE TEMP TABLE route_voronoi ON COMMIT DROP AS
       SELECT s.code, ST_Transform(ST_Segmentize(d.geom, 100), 4326) AS geom
       FROM (SELECT ST_Collect(ST_Transform(geom, :epsg)) AS pts FROM stations) a,
            LATERAL ST_Dump(ST_VoronoiPolygons(a.pts, 0,
                            ST_Expand(ST_Envelope(a.pts), 20000))) d
       JOIN stations s ON ST_Intersects(d.geom, ST_Transform(s.geom, :epsg))"""),
    # The metres to the station are computed here, once per point.
    ("nearest station", """CREATE TEMP TABLE route_stations ON COMMIT DROP AS
       SELECT DISTINCT ON (p.idx) p.idx, s.code,
              ST_Distance(s.geom::geography, p.g::geography) AS dist
       FROM route_voronoi v
       CROSS JOIN LATERAL (SELECT idx, g FROM route_points WHERE ST_Intersects(v.geom, g)
                           OFFSET 0) p
       JOIN stations s ON s.code = v.code ORDER BY p.idx, v.code"""),
    # Fewer than two distinct stations (no diagram) or a point beyond it: KNN in metres.
    ("station fallback", f"""INSERT INTO route_stations
       SELECT p.idx, s.code, s.dist FROM route_points p
       CROSS JOIN LATERAL (
           SELECT k.code, ST_Distance(k.geom::geography, p.g::geography) AS dist
           FROM (SELECT code, geom FROM stations
                 ORDER BY geom <-> p.g LIMIT {_KNN_CANDIDATES}) k
           ORDER BY 2, 1 LIMIT 1) s
       WHERE NOT EXISTS (SELECT FROM route_stations r WHERE r.idx = p.idx)"""),
    # Other grids within :edge_deg (degrees of longitude, the longer of the two, so the window
    # is never too small) of points inside a grid; exact metres decide near_boundary later.
    ("near boundary", """CREATE TEMP TABLE route_near ON COMMIT DROP AS
       SELECT DISTINCT ON (idx) idx, code, dist FROM (
           SELECT p.idx, c.code, ST_Distance(c.geom::geography, p.g::geography) AS dist
           FROM grid_cells c
           CROSS JOIN LATERAL (SELECT idx, g FROM route_points
                               WHERE ST_DWithin(c.geom, g, :edge_deg) OFFSET 0) p
           JOIN route_hits h ON h.idx = p.idx AND h.code <> c.code AND NOT h.snapped) n
       ORDER BY idx, dist, code"""),
    # Points snapped from just outside: the nearest other grid by KNN as single routing finds
    # it, kept within :snap_reach_m (max_snap_m + boundary_m) so near_boundary and
    # nearest_other_grid agree with POST /route (they were missing for snapped rows).
    ("near boundary (snapped)", f"""INSERT INTO route_near
       SELECT h.idx, k.code, k.dist FROM route_hits h
       JOIN route_points p ON p.idx = h.idx
       CROSS JOIN LATERAL (
           SELECT n.code, ST_Distance(n.geom::geography, p.g::geography) AS dist
           FROM (SELECT code, geom FROM grid_cells WHERE code <> h.code
                 ORDER BY geom <-> p.g LIMIT {_KNN_CANDIDATES}) n
           ORDER BY 2, 1 LIMIT 1) k
       WHERE h.snapped AND k.dist <= :snap_reach_m"""),
    # Candidate stall zones (opening hours are checked in Python, on few rows).
    ("stall zones", """CREATE TEMP TABLE route_zones ON COMMIT DROP AS
       SELECT p.idx, array_agg(z.id ORDER BY z.id) AS ids FROM stall_zones z
       JOIN route_points p ON ST_Covers(z.geom, p.g) WHERE z.status = 'approved'
       GROUP BY p.idx"""),
    # Named component (primary key) or, for a component category, the nearest of its class
    # (GiST); separate branches so each uses its index.
    ("components", """CREATE TEMP TABLE route_linked ON COMMIT DROP AS
       SELECT r.idx, comp.* FROM route_components r
       CROSS JOIN LATERAL (
           SELECT c.code, c.owner, c.cls, ST_Distance(c.geom::geography, r.g::geography) AS dist
           FROM (SELECT code, owner, '0118'::char(4) AS cls, geom FROM streetlights
                 WHERE r.comp_code IS NOT NULL AND code = r.comp_code
                 UNION ALL
                 SELECT code, owner, cover_class, geom FROM manhole_covers
                 WHERE r.comp_code IS NOT NULL AND code = r.comp_code
                 UNION ALL
                 SELECT code, owner, '0118'::char(4), geom FROM streetlights
                 WHERE r.comp_code IS NULL AND r.comp_class = '0118' AND in_use
                   AND ST_DWithin(geom, r.g, :link_deg)
                 UNION ALL
                 SELECT code, owner, cover_class, geom FROM manhole_covers
                 WHERE r.comp_code IS NULL AND r.comp_class IS NOT NULL
                   AND cover_class = r.comp_class AND in_use
                   AND ST_DWithin(geom, r.g, :link_deg)) c
           WHERE r.comp_code IS NOT NULL
              OR ST_DWithin(c.geom::geography, r.g::geography, :link_m)
           ORDER BY dist, c.code LIMIT 1) comp"""),
    ("analyze", "ANALYZE route_stations"),
    ("analyze", "ANALYZE route_near"),
    ("analyze", "ANALYZE route_zones"),
    ("analyze", "ANALYZE route_linked"),
]

# Statements that only fill the gaps the one before left; skipped when it found every point
# (the usual case: the anti-join alone costs ~0.5 s per 1M points).
FILLS_GAPS_OF = {"snapped grid": "containing grid", "station fallback": "nearest station",
                 "near boundary (snapped)": "containing grid"}

# One row per routed point: hash joins on idx, plus the owner valid on the point's local day
# (ids only: names are looked up in Python from a few thousand rows, not sent 1M times).
# Read back with COPY TO: no Python object per value.
ROUTE_SQL = """
SELECT p.idx, h.code, h.dist, h.snapped, o.id AS owner_id, rs.code AS station_code,
       rs.dist AS station_m, comp.code AS comp_code, comp.owner AS comp_owner,
       comp.cls AS comp_class, comp.dist AS comp_m, other.code AS other_code,
       other.dist AS other_m, zs.ids AS zone_ids
FROM route_points p
JOIN route_hits h ON h.idx = p.idx
LEFT JOIN grid_owners o ON o.grid_code = h.code AND o.valid_from <= p.day
    AND (o.valid_to IS NULL OR o.valid_to > p.day)
LEFT JOIN route_stations rs ON rs.idx = p.idx
LEFT JOIN route_near other ON other.idx = p.idx
LEFT JOIN route_zones zs ON zs.idx = p.idx
LEFT JOIN route_linked comp ON comp.idx = p.idx
"""
NUMERIC_FIELDS = ("idx", "dist", "owner_id", "station_m", "comp_m", "other_m")
CELLS_SQL = """
SELECT g.code, g.community_code, cm.name AS community_name, sd.name AS subdistrict_name
FROM grid_cells g JOIN communities cm ON cm.code = g.community_code
JOIN subdistricts sd ON sd.code = cm.subdistrict_code
"""
OWNERS_SQL = "SELECT id AS owner_id, owner_name, owner_kind, phone AS owner_phone FROM grid_owners"
STATIONS_SQL = "SELECT code AS station_code, name AS station_name FROM stations"
