"""The first views' base-map tiles, rendered into the tile cache right after startup.

/map opens at the city centre at zoom OVERVIEW_ZOOM with 512 px tiles, and the page counts as
interactive once those base-map tiles are drawn (issue 15's budget). On a fresh process each
of them is an ST_AsMVT over the roads and outlines that the first visitor waits for; a daemon
thread renders them into the per-process tile cache of api/routes/tiles.py (same keys, same
time to live) right after startup, for a screen up to WARM_SCREEN_PX, so the first visitor
gets cached tiles; then the same screen centred on the city's districts at the zooms the
analysis maps fit their results to (FITTED_ZOOMS). Startup never waits for it, shutdown stops
it between two tiles, and a tile asked for before it is warmed is rendered by its request.

Base tiles are the same for every viewer (api.routes.tiles.BASEMAP_SCOPE), so the warmed
tiles serve every role's first view of the city centre, grid owners and district staff too.
`CITYGRID_MAP_WARM_TILES=false` turns it off.
"""

from __future__ import annotations

import math
import threading
from functools import partial
from types import SimpleNamespace

from fastapi import FastAPI
from sqlalchemy import text

from api.overview_map import OVERVIEW_ZOOM
from api.routes import tiles as tile_routes
from api.warmup import start_warmup, stop_warmup
from gis.geo.basemap_tiles import basemap_tile
from gis.geo.tiles import TileKey

WARM_SCREEN_PX = (1920, 1080)  # covers the bench's 1440x900 and 390x844 views
TILE_PX = 512  # as the pages draw them (maps/templates/overview.js)


def first_view_tiles(center: tuple[float, float], *, zoom: int = OVERVIEW_ZOOM,
                     screen: tuple[int, int] = WARM_SCREEN_PX) -> list[TileKey]:
    """Server tiles (zoom - 1, asked with ?px=512) a map at `center` and `zoom` draws first."""
    lat, lon = center
    world = 256 * 2**zoom  # map pixels at `zoom`; 512 px tiles: 2**(zoom - 1) per row
    cx = (lon + 180) / 360 * world
    cy = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * world
    w, h = screen
    last = 2 ** (zoom - 1) - 1
    xs = range(max(0, int((cx - w / 2) // TILE_PX)), min(last, int((cx + w / 2) // TILE_PX)) + 1)
    ys = range(max(0, int((cy - h / 2) // TILE_PX)), min(last, int((cy + h / 2) // TILE_PX)) + 1)
    # Centre first: the tiles every screen size needs are warm soonest.
    keys = [TileKey(zoom - 1, x, y) for x in xs for y in ys]
    return sorted(keys, key=lambda t: (t.x + 0.5 - cx / TILE_PX) ** 2
                  + (t.y + 0.5 - cy / TILE_PX) ** 2)


# The analysis maps fit their result (inside the city's districts) to the screen: map zoom
# 11 at 1440x900 and 10 on a phone for the demo city; 12 for a smaller result.
FITTED_ZOOMS = (10, 11, 12)


def fitted_view_tiles(bounds: tuple[float, float, float, float], *,
                      zooms: tuple[int, ...] = FITTED_ZOOMS) -> list[TileKey]:
    """Server tiles of a screen centred on `bounds` (lon/lat), as fitBounds centres it, at
    each of `zooms`."""
    west, south, east, north = bounds
    center = ((south + north) / 2, (west + east) / 2)
    return [t for zoom in zooms for t in first_view_tiles(center, zoom=zoom)]


def city_extent(app: FastAPI) -> tuple[float, float, float, float] | None:
    """The loaded districts' bounding box (lon/lat), or None without districts."""
    with app.state.sessionmaker() as session:
        box = session.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            "FROM (SELECT ST_Extent(geom) AS e FROM districts) s")).one()
    return None if box[0] is None else (box[0], box[1], box[2], box[3])


def warm_base_tiles(app: FastAPI, tiles: list[TileKey], stop: threading.Event) -> int:
    """Render `tiles` of the base map into the app's tile cache; returns how many were."""
    holder = SimpleNamespace(app=app)  # what the cache helper reads of a request
    done = 0
    for tile in tiles:
        if stop.is_set():
            break
        key = (tile_routes.BASEMAP_SCOPE, "basemap", tile.z, tile.x, tile.y, TILE_PX)
        with app.state.sessionmaker() as session:
            tile_routes._cached(holder, key, tile_routes.BASEMAP_TTL_S,  # type: ignore[arg-type]
                                partial(basemap_tile, session, tile, px=TILE_PX))
        done += 1
    return done


def start_tile_warmup(app: FastAPI, center: tuple[float, float]) -> threading.Event:
    """Warm the first view's base tiles in a daemon thread; set the returned event to stop."""
    def work(stop: threading.Event) -> int:
        done = warm_base_tiles(app, first_view_tiles(center), stop)
        extent = city_extent(app)
        if extent is not None:  # then the analysis maps' fitted views
            done += warm_base_tiles(app, fitted_view_tiles(extent), stop)
        return done

    return start_warmup(app, "tile_warmup", "citygrid-tile-warmup", work)


def stop_tile_warmup(app: FastAPI) -> None:
    """Stop the warm-up thread (between two tiles) before the engines are disposed."""
    stop_warmup(app, "tile_warmup", timeout=10)
