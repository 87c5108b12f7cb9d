"""Staff vector tiles (MVT): the big layers and the offline base map, for the map pages.

`/tiles/{layer}/{z}/{x}/{y}.pbf` serves grid cells, roads, streetlights, manhole covers and
cases (aggregated below their detail zoom); `/tiles/basemap/{z}/{x}/{y}.pbf` the city's own
base map. Both need a signed-in staff member and run in the request's session, so a grid
owner's tiles hold only their grids' rows. The public layers are tiled by `/ogc` instead.

Tiles carry an ETag (a hash of the tile's bytes and the viewer's scope): a browser
revalidates and gets 304 without the bytes. The app's gzip middleware compresses them. Each
process keeps the last TILE_CACHE_MAX tiles per scope (staff, or one grid owner) for
DATA_TTL_S seconds (base map: BASEMAP_TTL_S), so a page's first view does not render the same
tile once per visitor; a change shows in data tiles within DATA_TTL_S.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from api.auth import StaffDep
from api.read_routing import ReadSessionDep
from gis.access.auth import User
from gis.geo.basemap_tiles import basemap_tile
from gis.geo.tile_layers import TILE_LAYERS, layer_tile
from gis.geo.tiles import MAX_ZOOM, TileKey, tile_etag

router = APIRouter(tags=["tiles"])

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
# Data tiles change with every case: revalidate each time (a 304 costs no bytes). The base
# map changes when the city's roads or outlines do: an hour is fine.
DATA_CACHE = "private, no-cache"
BASEMAP_CACHE = "private, max-age=3600"

TILE_CACHE_MAX = 4096  # tiles per process; a city tile is 1-30 KB
DATA_TTL_S = 15.0
BASEMAP_TTL_S = 3600.0
_CACHE_LOCK = threading.Lock()

Zoom = Annotated[int, Path(description=f"zoom level 0..{MAX_ZOOM}", examples=[14])]
Column = Annotated[int, Path(description="tile column, 0..2^z-1", examples=[13518])]
Row = Annotated[int, Path(description="tile row (XYZ, from the north), 0..2^z-1",
                          examples=[6396])]
# The pages draw each tile 512 px wide one zoom further in (a quarter of the requests): the
# server then judges detail zooms, bins and label spacing at the zoom the tile is drawn at.
Px = Annotated[int, Query(ge=256, le=512, multiple_of=256,
                          description="screen pixels the tile is drawn at: 256, or 512 "
                                      "(drawn at zoom z + 1)")]


def _tile_response(request: Request, body: bytes, *, scope: str, cache: str) -> Response:
    etag = tile_etag(body, scope)
    headers = {"ETag": etag, "Cache-Control": cache,
               "Vary": "Accept-Encoding, Authorization, Cookie"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=MVT_MEDIA_TYPE, headers=headers)


def _cached(request: Request, key: tuple[object, ...], ttl: float,
            build: Callable[[], bytes]) -> bytes:
    """The tile under `key` if built less than `ttl` seconds ago, else built now and kept."""
    cache: OrderedDict[tuple[object, ...], tuple[float, bytes]] | None = getattr(
        request.app.state, "tile_cache", None)
    if cache is None:
        cache = request.app.state.tile_cache = OrderedDict()
    now = time.monotonic()
    with _CACHE_LOCK:
        hit = cache.get(key)
        if hit is not None and now - hit[0] < ttl:
            cache.move_to_end(key)
            return hit[1]
    body = build()  # outside the lock: tiles render in parallel
    with _CACHE_LOCK:
        cache[key] = (now, body)
        cache.move_to_end(key)
        while len(cache) > TILE_CACHE_MAX:
            cache.popitem(last=False)
    return body


# The base map's tables (outlines, roads, landmarks) carry no row-level security and every
# staff role reads all of them, so a base tile is the same for every viewer: one cache entry
# (and the start-up warm-up's tiles) serves grid owners and district staff too.
BASEMAP_SCOPE = "everyone"


def _scope(user: User) -> str:
    # Two grid owners get different tiles for the same address: keep their ETags apart. So do
    # staff of two district sub-centres (row-level security on cases by district).
    scope = f"owner:{user.owner_name}" if user.is_grid_owner else "staff"
    return f"{scope}:district:{user.district_code}" if user.district_code else scope


@router.get("/tiles/basemap/{z}/{x}/{y}.pbf", summary="底图矢量瓦片 (offline base map MVT)",
            response_class=Response,
            responses={200: {"content": {MVT_MEDIA_TYPE: {}}}, 304: {"description": "unchanged"},
                       404: {"description": "no such tile"}})
def basemap(request: Request, z: Zoom, x: Column, y: Row, session: ReadSessionDep,
            user: StaffDep, px: Px = 256) -> Response:
    """District, street and community outlines, roads, landmarks and thinned labels."""
    tile, scope = TileKey(z, x, y), _scope(user)
    body = _cached(request, (BASEMAP_SCOPE, "basemap", z, x, y, px), BASEMAP_TTL_S,
                   lambda: basemap_tile(session, tile, px=px))
    return _tile_response(request, body, scope=scope, cache=BASEMAP_CACHE)


@router.get("/tiles/{layer}/{z}/{x}/{y}.pbf", summary="图层矢量瓦片 (staff layer MVT)",
            response_class=Response,
            responses={200: {"content": {MVT_MEDIA_TYPE: {}}}, 304: {"description": "unchanged"},
                       404: {"description": "unknown layer or no such tile"}})
def staff_layer(request: Request,
          layer: Annotated[str, Path(description=f"one of {', '.join(TILE_LAYERS)}",
                                     examples=["cases"])],
          z: Zoom, x: Column, y: Row, session: ReadSessionDep, user: StaffDep,
          px: Px = 256) -> Response:
    """One staff layer's tile: features from its detail zoom on, counts per bin below."""
    tile, scope = TileKey(z, x, y), _scope(user)
    body = _cached(request, (scope, layer, z, x, y, px), DATA_TTL_S,
                   lambda: layer_tile(session, layer, tile, px=px))
    return _tile_response(request, body, scope=scope, cache=DATA_CACHE)
