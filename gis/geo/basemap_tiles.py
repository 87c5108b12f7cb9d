"""The offline base map as vector tiles, from the city's own data (no tile server needed).

One MVT per tile with the layers `district`, `subdistricts`, `communities`, `roads` (by class,
with names), `landmarks` (schools, kindergartens, hospitals, metro exits, farmers' markets,
community stations) and `labels`: one point per name to write, with a priority `p` (lower
wins). Labels are thinned here to at most one per 64x32 px cell of the tile (the most important
wins), so a tile never carries a heap of names; the page then drops any label that would still
touch another across tile edges.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gis.geo.tiles import BUFFER, EXTENT, TileKey, run_tile_query

SUBDISTRICT_ZOOM = 11  # street (街道) outlines and names from here
COMMUNITY_ZOOM = 14  # community outlines and names
ROAD_NAME_ZOOM = 14
LANDMARK_ZOOM = 13  # landmark symbols; their names from LANDMARK_NAME_ZOOM
LANDMARK_NAME_ZOOM = 15
SUBDISTRICT_LABEL_END_ZOOM = 17  # street names stop here (communities take over)
LABEL_CELL_PX = (64, 32)  # a Chinese name of 4-6 characters at 12 px is about 50-80 px wide

# Landmarks from the sensitive sites and facilities tables, one kind vocabulary for the page.
_LANDMARKS = """
SELECT s.name, CASE s.kind WHEN 'school_gate' THEN 'school' WHEN 'metro_exit' THEN 'metro'
                           ELSE s.kind END AS kind,
       ST_PointOnSurface(s.geom) AS geom
FROM sensitive_sites s WHERE s.kind <> 'fire_lane'
UNION ALL
SELECT f.name, 'market', f.geom FROM facilities f WHERE f.kind = 'farmers_market'
UNION ALL
SELECT st.name, 'station', st.geom FROM stations st
"""

_BASEMAP = """
WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
b4326 AS (SELECT ST_Transform(b.env, 4326) AS env FROM b),
district_q AS (
    SELECT ST_AsMVTGeom(ST_Transform(d.geom, 3857), b.env, :extent, :buffer, true) AS geom,
           d.name
    FROM districts d, b, b4326 WHERE d.geom && b4326.env
),
subdistricts_q AS (
    SELECT ST_AsMVTGeom(ST_Transform(s.geom, 3857), b.env, :extent, :buffer, true) AS geom,
           s.name
    FROM subdistricts s, b, b4326 WHERE :z >= :sub_zoom AND s.geom && b4326.env
),
communities_q AS (
    SELECT ST_AsMVTGeom(ST_Transform(c.geom, 3857), b.env, :extent, :buffer, true) AS geom,
           c.name
    FROM communities c, b, b4326 WHERE :z >= :com_zoom AND c.geom && b4326.env
),
roads_q AS (
    SELECT ST_AsMVTGeom(ST_Transform(r.geom, 3857), b.env, :extent, :buffer, true) AS geom,
           r.name, r.street_class AS class
    FROM roads r, b, b4326 WHERE r.geom && b4326.env
),
marks AS (SELECT m.* FROM (""" + _LANDMARKS + """) m, b4326
          WHERE :z >= :mark_zoom AND m.geom && b4326.env),
landmarks_q AS (
    SELECT ST_AsMVTGeom(ST_Transform(m.geom, 3857), b.env, :extent, :buffer, true) AS geom,
           m.name, m.kind
    FROM marks m, b
),
-- Where each name would be written, in 3857, with its priority and a length for ties.
candidates AS (
    SELECT 1 AS p, s.name AS text, 'subdistrict' AS kind,
           ST_Transform(ST_PointOnSurface(s.geom), 3857) AS g, ST_Area(s.geom) AS weight
    FROM subdistricts s, b4326
    WHERE :z >= :sub_zoom AND :z < :sub_label_end AND s.geom && b4326.env
    UNION ALL
    SELECT 2, r.name, 'road', ST_LineInterpolatePoint(r.clipped, 0.5), ST_Length(r.clipped)
    FROM (
        SELECT DISTINCT ON (r.name) r.name,
               ST_Intersection(ST_Transform(r.geom, 3857), b.env) AS clipped
        FROM roads r, b, b4326
        WHERE :z >= :road_zoom AND r.geom && b4326.env
        ORDER BY r.name, ST_Length(ST_Intersection(ST_Transform(r.geom, 3857), b.env)) DESC
    ) r
    WHERE GeometryType(r.clipped) = 'LINESTRING'
    UNION ALL
    SELECT 3, c.name, 'community', ST_Transform(ST_PointOnSurface(c.geom), 3857),
           ST_Area(c.geom)
    FROM communities c, b4326 WHERE :z >= :com_zoom AND c.geom && b4326.env
    UNION ALL
    SELECT 4, m.name, m.kind, ST_Transform(m.geom, 3857), 0
    FROM marks m WHERE :z >= :mark_name_zoom
),
thinned AS (
    SELECT DISTINCT ON (cx, cy) p, text, kind, g FROM (
        SELECT c.*,
               floor((ST_X(c.g) - ST_XMin(b.env)) / (ST_XMax(b.env) - ST_XMin(b.env))
                     * 256 / :cell_w) AS cx,
               floor((ST_YMax(b.env) - ST_Y(c.g)) / (ST_YMax(b.env) - ST_YMin(b.env))
                     * 256 / :cell_h) AS cy
        FROM candidates c, b WHERE ST_Intersects(c.g, b.env)
    ) c
    ORDER BY cx, cy, p, weight DESC, text
),
labels_q AS (
    SELECT ST_AsMVTGeom(t.g, b.env, :extent, 0, true) AS geom, t.text, t.kind, t.p
    FROM thinned t, b
)
SELECT
    (SELECT ST_AsMVT(q, 'district', :extent, 'geom') FROM district_q q WHERE geom IS NOT NULL)
 || (SELECT ST_AsMVT(q, 'subdistricts', :extent, 'geom') FROM subdistricts_q q
     WHERE geom IS NOT NULL)
 || (SELECT ST_AsMVT(q, 'communities', :extent, 'geom') FROM communities_q q
     WHERE geom IS NOT NULL)
 || (SELECT ST_AsMVT(q, 'roads', :extent, 'geom') FROM roads_q q WHERE geom IS NOT NULL)
 || (SELECT ST_AsMVT(q, 'landmarks', :extent, 'geom') FROM landmarks_q q WHERE geom IS NOT NULL)
 || (SELECT ST_AsMVT(q, 'labels', :extent, 'geom') FROM labels_q q WHERE geom IS NOT NULL)
"""


TILE_SIZES = (256, 512)  # screen pixels a tile is drawn at; 512: the page fetches zoom z - 1


def basemap_tile(session: Session, tile: TileKey, *, px: int = 256) -> bytes:
    """The offline base map's MVT at `tile` (outlines, roads, landmarks, thinned labels).

    `px` 512: the tile is drawn 512 px wide at map zoom z + 1, so what shows from which zoom
    and the label cells are judged at that zoom, and the map looks as with 256 px tiles.
    """
    if px not in TILE_SIZES:
        raise ValueError(f"tile size {px} px: one of {TILE_SIZES}")
    scale = px // 256
    up = scale.bit_length() - 1  # zoom levels between the fetched and the drawn zoom
    params: dict[str, object] = {
        **tile.params, "extent": EXTENT, "buffer": BUFFER, "sub_zoom": SUBDISTRICT_ZOOM - up,
        "sub_label_end": SUBDISTRICT_LABEL_END_ZOOM - up,
        "com_zoom": COMMUNITY_ZOOM - up, "road_zoom": ROAD_NAME_ZOOM - up,
        "mark_zoom": LANDMARK_ZOOM - up, "mark_name_zoom": LANDMARK_NAME_ZOOM - up,
        "cell_w": LABEL_CELL_PX[0] / scale, "cell_h": LABEL_CELL_PX[1] / scale}
    return run_tile_query(session, _BASEMAP, params)
