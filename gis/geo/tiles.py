"""Mapbox vector tiles (MVT) from PostGIS: tile addresses, bin sizes, running a tile query.

A tile is z/x/y in the Web Mercator (EPSG:3857) XYZ scheme Leaflet uses. Queries are built by
`gis.geo.tile_layers` and `gis.geo.basemap_tiles` with ST_AsMVT; every value (z, x, y, bin
sizes) is a bound parameter, never text in the SQL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.platform.errors import NotFoundError

MAX_ZOOM = 20  # street level and a bit; deeper tiles would only repeat z20's features
EXTENT = 4096  # MVT coordinates per tile side
BUFFER = 64  # MVT units drawn past the edge, so strokes and circles do not clip at seams
TILE_PX = 256  # Leaflet's tile size in screen pixels
WORLD_M = 2 * 20037508.342789244  # width of the Web Mercator world in metres


@dataclass(frozen=True)
class TileKey:
    """One tile address, checked: 0 <= z <= MAX_ZOOM, 0 <= x, y < 2**z."""

    z: int
    x: int
    y: int

    def __post_init__(self) -> None:
        if not 0 <= self.z <= MAX_ZOOM:
            raise NotFoundError(f"zoom {self.z} outside 0..{MAX_ZOOM}: no such tile")
        side = 1 << self.z
        if not (0 <= self.x < side and 0 <= self.y < side):
            raise NotFoundError(
                f"tile {self.z}/{self.x}/{self.y} outside 0..{side - 1} at zoom {self.z}")

    @property
    def params(self) -> dict[str, int]:
        """z, x, y as bind parameters."""
        return {"z": self.z, "x": self.x, "y": self.y}

    def metres_per_px(self) -> float:
        """Web Mercator metres per screen pixel at this zoom."""
        return WORLD_M / (1 << self.z) / TILE_PX


def bin_size_m(tile: TileKey, px: int) -> float:
    """Side in Mercator metres of a square bin `px` screen pixels wide (divides the tile)."""
    if TILE_PX % px:
        raise ValueError(f"bin of {px} px does not divide a {TILE_PX} px tile")
    return tile.metres_per_px() * px


def run_tile_query(session: Session, sql: str, params: dict[str, object]) -> bytes:
    """Execute a query returning one bytea (ST_AsMVT, possibly several concatenated)."""
    value = session.execute(text(sql), params).scalar_one()
    return bytes(value or b"")


def tile_etag(*parts: bytes | str) -> str:
    """A strong ETag for a tile: a hash of its bytes (and whatever else identifies it)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return '"' + digest.hexdigest()[:32] + '"'
