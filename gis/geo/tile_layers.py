"""The staff vector-tile layers: grid cells, roads, streetlights, manhole covers, cases.

Each layer answers one MVT per tile. Below its detail zoom a layer aggregates instead of
cutting features off: points become counts per square bin (64 px for lights and covers, drawn
as numbers; 32 px for cases, drawn as a density "heat" of squares), grid cells become their
communities with the number of cells. Bins are aligned to the tile grid, so a bin never spans
two tiles and counts are never split. Covers' bins are shifted half a bin diagonally against
the lights' so the two layers' numbers never sit on top of each other.

The queries run in the request's session, so a grid owner's row-level security applies
(their counts and features are their grids' only).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from gis.geo.tiles import BUFFER, EXTENT, WORLD_M, TileKey, bin_size_m, run_tile_query
from gis.platform.errors import NotFoundError

HALF_WORLD_M = WORLD_M / 2
EARTH_RADIUS_M = 6378137.0


@dataclass(frozen=True)
class PointLayer:
    """A point table tiled as features from `detail_zoom` on and as bin counts below it."""

    id: str
    table: str
    columns: str  # SQL select list of the feature properties (fixed text, never user input)
    flagged: str  # SQL boolean: the row needs attention (broken, not lit, open)
    detail_zoom: int
    bin_px: int
    shift: float = 0.0  # bin grid offset, in bins
    bins_as_squares: bool = False  # heat squares (polygons) instead of count points


POINT_LAYERS: dict[str, PointLayer] = {
    "streetlights": PointLayer(
        "streetlights", "streetlights",
        "t.code, t.state, t.lit, t.owner", "(t.state <> 'intact' OR NOT t.lit)",
        detail_zoom=17, bin_px=64),
    "manhole_covers": PointLayer(
        "manhole_covers", "manhole_covers",
        "t.code, t.cover_class, t.state, t.owner", "(t.state <> 'intact')",
        detail_zoom=17, bin_px=64, shift=0.5),
    "cases": PointLayer(
        "cases", "cases",
        "t.id, t.case_no, t.category_code, t.channel, t.status, "
        "to_char(t.reported_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI') "
        "AS reported_at",
        "(t.status NOT IN ('closed', 'evaluated', 'rejected'))",
        detail_zoom=16, bin_px=32, bins_as_squares=True),
}

GRID_DETAIL_ZOOM = 15  # below it, grid cells are drawn as communities with their cell counts
TILE_LAYERS = ("grid_cells", "roads", *POINT_LAYERS)

_POINT_FEATURES = """
WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
q AS (
    SELECT ST_AsMVTGeom(ST_Transform(t.geom, 3857), b.env, :extent, :buffer, true) AS geom,
           {columns}, {flagged} AS flagged
    FROM {table} t, b
    WHERE t.geom && ST_Transform(ST_Expand(b.env, :margin), 4326)
)
SELECT ST_AsMVT(q, :layer, :extent, 'geom') FROM q WHERE q.geom IS NOT NULL
"""

# Bins counted from every point of the bin (the envelope grown by a bin), kept only by the
# tile that holds the bin's centre.
_POINT_BINS = """
WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
p AS (
    SELECT ST_Transform(t.geom, 3857) AS g, {flagged} AS flagged
    FROM {table} t, b
    WHERE t.geom && ST_Transform(ST_Expand(b.env, :size), 4326)
),
c AS (
    SELECT floor((ST_X(g) + :half - :offset) / :size) AS i,
           floor((ST_Y(g) + :half - :offset) / :size) AS j,
           count(*) AS n, count(*) FILTER (WHERE flagged) AS flagged
    FROM p GROUP BY 1, 2
),
k AS (
    SELECT c.*, i * :size - :half + :offset AS x0, j * :size - :half + :offset AS y0 FROM c
),
q AS (
    SELECT ST_AsMVTGeom({shape}, b.env, :extent, :buffer, true) AS geom,
           k.n, k.flagged,
           -- per km2 on the ground: a Mercator metre is 1/cosh(y/R) of a real one
           round((k.n * 1e6 * cosh((k.y0 + :size / 2) / :radius) ^ 2 / (:size * :size))::numeric,
                 1)::float8 AS density
    FROM k, b
    WHERE k.x0 + :size / 2 >= ST_XMin(b.env) AND k.x0 + :size / 2 < ST_XMax(b.env)
      AND k.y0 + :size / 2 >= ST_YMin(b.env) AND k.y0 + :size / 2 < ST_YMax(b.env)
)
SELECT ST_AsMVT(q, :layer, :extent, 'geom') FROM q WHERE q.geom IS NOT NULL
"""
_BIN_CENTRE = "ST_SetSRID(ST_MakePoint(k.x0 + :size / 2, k.y0 + :size / 2), 3857)"
_BIN_SQUARE = "ST_MakeEnvelope(k.x0, k.y0, k.x0 + :size, k.y0 + :size, 3857)"

_GRID_CELLS = """
WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
q AS (
    SELECT ST_AsMVTGeom(ST_Transform(t.geom, 3857), b.env, :extent, :buffer, true) AS geom,
           t.code, t.community_code, round(t.area_m2::numeric)::float8 AS area_m2
    FROM grid_cells t, b
    WHERE t.geom && ST_Transform(b.env, 4326)
)
SELECT ST_AsMVT(q, :layer, :extent, 'geom') FROM q WHERE q.geom IS NOT NULL
"""

# Communities with how many (visible) cells each holds: 139 outlines instead of 11,223 cells.
_GRID_COMMUNITIES = """
WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
n AS (SELECT community_code, count(*) AS cells FROM grid_cells GROUP BY 1),
q AS (
    SELECT ST_AsMVTGeom(ST_Transform(c.geom, 3857), b.env, :extent, :buffer, true) AS geom,
           c.code AS community_code, c.name, n.cells
    FROM communities c JOIN n ON n.community_code = c.code, b
    WHERE c.geom && ST_Transform(b.env, 4326)
)
SELECT ST_AsMVT(q, :layer, :extent, 'geom') FROM q WHERE q.geom IS NOT NULL
"""

_ROADS = """
WITH b AS (SELECT ST_TileEnvelope(:z, :x, :y) AS env),
q AS (
    SELECT ST_AsMVTGeom(ST_Transform(t.geom, 3857), b.env, :extent, :buffer, true) AS geom,
           t.id, t.name, t.street_class, t.width_m
    FROM roads t, b
    WHERE t.geom && ST_Transform(b.env, 4326)
)
SELECT ST_AsMVT(q, :layer, :extent, 'geom') FROM q WHERE q.geom IS NOT NULL
"""


def layer_tile(session: Session, layer_id: str, tile: TileKey, *, px: int = 256) -> bytes:
    """The MVT of staff layer `layer_id` at `tile` (one MVT layer named like the layer).

    `px` 512: the tile is drawn 512 px wide at map zoom z + 1; detail zooms and bins (in
    screen pixels) are judged at that zoom, so the page shows what 256 px tiles would show.
    """
    if px not in (256, 512):
        raise ValueError(f"tile size {px} px: 256 or 512")
    scale = px // 256
    shown_z = tile.z + scale.bit_length() - 1  # the map zoom the tile is drawn at
    params: dict[str, object] = {**tile.params, "extent": EXTENT, "buffer": BUFFER,
                                 "layer": layer_id}
    if layer_id == "grid_cells":
        sql = _GRID_CELLS if shown_z >= GRID_DETAIL_ZOOM else _GRID_COMMUNITIES
        return run_tile_query(session, sql, params)
    if layer_id == "roads":
        return run_tile_query(session, _ROADS, params)
    layer = POINT_LAYERS.get(layer_id)
    if layer is None:
        raise NotFoundError(
            f"no vector tiles for layer {layer_id!r}; tiled layers: {', '.join(TILE_LAYERS)}")
    if shown_z >= layer.detail_zoom:
        sql = _POINT_FEATURES.format(columns=layer.columns, flagged=layer.flagged,
                                     table=layer.table)
        params["margin"] = tile.metres_per_px() * 256 * BUFFER / EXTENT
        return run_tile_query(session, sql, params)
    size = bin_size_m(tile, layer.bin_px // scale)
    sql = _POINT_BINS.format(flagged=layer.flagged, table=layer.table,
                             shape=_BIN_SQUARE if layer.bins_as_squares else _BIN_CENTRE)
    params.update(size=size, half=HALF_WORLD_M, offset=layer.shift * size,
                  radius=EARTH_RADIUS_M)
    return run_tile_query(session, sql, params)
