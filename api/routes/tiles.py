"""Staff vector tiles (MVT): the big layers and the offline base map, for the map pages.

`/tiles/{layer}/{z}/{x}/{y}.pbf` serves grid cells, roads, streetlights, manhole covers and
cases (aggregated below their detail zoom); `/tiles/basemap/{z}/{x}/{y}.pbf` the city's own
base map. Both need a signed-in staff member and run in the request's session, so a grid
owner's tiles hold only their grids' rows. The public layers are tiled by `/ogc` instead.

Tiles carry an ETag (a hash of the tile's bytes and the viewer's scope): a browser
revalidates and gets 304 without the bytes. The app's gzip middleware compresses them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from api.auth import StaffDep
from api.deps import SessionDep
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

Zoom = Annotated[int, Path(description=f"zoom level 0..{MAX_ZOOM}", examples=[14])]
Column = Annotated[int, Path(description="tile column, 0..2^z-1", examples=[13518])]
Row = Annotated[int, Path(description="tile row (XYZ, from the north), 0..2^z-1",
                          examples=[6396])]


def _tile_response(request: Request, body: bytes, *, scope: str, cache: str) -> Response:
    etag = tile_etag(body, scope)
    headers = {"ETag": etag, "Cache-Control": cache,
               "Vary": "Accept-Encoding, Authorization, Cookie"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=MVT_MEDIA_TYPE, headers=headers)


def _scope(user: User) -> str:
    # Two grid owners get different tiles for the same address: keep their ETags apart.
    return f"owner:{user.owner_name}" if user.is_grid_owner else "staff"


@router.get("/tiles/basemap/{z}/{x}/{y}.pbf", summary="底图矢量瓦片 (offline base map MVT)",
            response_class=Response,
            responses={200: {"content": {MVT_MEDIA_TYPE: {}}}, 304: {"description": "unchanged"},
                       404: {"description": "no such tile"}})
def basemap(request: Request, z: Zoom, x: Column, y: Row, session: SessionDep,
            user: StaffDep) -> Response:
    """District, street and community outlines, roads, landmarks and thinned labels."""
    body = basemap_tile(session, TileKey(z, x, y))
    return _tile_response(request, body, scope=_scope(user), cache=BASEMAP_CACHE)


@router.get("/tiles/{layer}/{z}/{x}/{y}.pbf", summary="图层矢量瓦片 (staff layer MVT)",
            response_class=Response,
            responses={200: {"content": {MVT_MEDIA_TYPE: {}}}, 304: {"description": "unchanged"},
                       404: {"description": "unknown layer or no such tile"}})
def staff_layer(request: Request,
          layer: Annotated[str, Path(description=f"one of {', '.join(TILE_LAYERS)}",
                                     examples=["cases"])],
          z: Zoom, x: Column, y: Row, session: SessionDep, user: StaffDep) -> Response:
    """One staff layer's tile: features from its detail zoom on, counts per bin below."""
    body = layer_tile(session, layer, TileKey(z, x, y))
    return _tile_response(request, body, scope=_scope(user), cache=DATA_CACHE)
