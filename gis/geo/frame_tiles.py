"""Vector tiles (MVT) cut in Python from a computed GeoDataFrame (analysis results).

Analysis results (coverage gaps, dark streets, hotspots, cover risk) are computed in Python
and cached per data version and viewer scope; their pages draw them from tiles instead of
embedding the GeoJSON. A `FrameTiles` is built once per cached result: the frame in Web
Mercator with an STRtree, so each tile is a tree query, a clip to the tile (plus BUFFER) and a
simplification to one tile unit before encoding. Points can also be counted per square bin
(`PointBins`), the way the staff case heat is (gis.geo.tile_layers), so a heat map needs no
embedded points either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import pandas as pd
import shapely
from shapely.strtree import STRtree

from gis.geo.tiles import BUFFER, EXTENT, TILE_PX, WORLD_M, TileKey

HALF_WORLD_M = WORLD_M / 2
EARTH_RADIUS_M = 6378137.0


def tile_bounds(tile: TileKey) -> tuple[float, float, float, float]:
    """The tile's (minx, miny, maxx, maxy) in Web Mercator metres."""
    side = WORLD_M / (1 << tile.z)
    minx = -HALF_WORLD_M + tile.x * side
    maxy = HALF_WORLD_M - tile.y * side
    return minx, maxy - side, minx + side, maxy


def _plain(value: Any) -> Any:
    """A property value MVT can carry (None is left out of the feature)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


@dataclass(frozen=True)
class FrameLayer:
    """One MVT layer's features: Mercator geometries, their index and their properties."""

    geoms: np.ndarray
    tree: STRtree
    properties: list[dict[str, Any]]
    brief: tuple[str, ...] | None = None  # the only properties kept below detail_zoom
    detail_zoom: int = 0
    dissolve: bool = False  # below detail_zoom: one shape per distinct `brief` value set

    @classmethod
    def of(cls, gdf: gpd.GeoDataFrame, columns: Sequence[str], *,
           brief: Sequence[str] | None = None, detail_zoom: int = 0,
           dissolve: bool = False) -> FrameLayer:
        """The frame's `columns` as properties, geometries projected to EPSG:3857.

        Below `detail_zoom` a feature carries only its `brief` properties: thousands of
        small features' distances and names would be most of a low-zoom tile's bytes; with
        `dissolve` the features sharing those properties are merged into one shape (10,000
        grid squares become a few multipolygons: far fewer bytes and far faster to encode).
        """
        web = gdf.to_crs(3857) if gdf.crs is not None and len(gdf) else gdf
        geoms = np.asarray(web.geometry.values, dtype=object)
        present = [c for c in columns if c in gdf.columns]
        frame = pd.DataFrame(gdf[present]) if present else pd.DataFrame(index=gdf.index)
        props = [{str(k): p for k, v in row.items() if (p := _plain(v)) is not None}
                 for row in frame.to_dict("records")]
        return cls(geoms, STRtree(geoms), props, tuple(brief) if brief is not None else None,
                   detail_zoom, dissolve)

    def features(self, tile: TileKey) -> list[dict[str, Any]]:
        """The features touching `tile` (with its buffer), clipped and simplified."""
        minx, miny, maxx, maxy = tile_bounds(tile)
        unit = (maxx - minx) / EXTENT
        pad = unit * BUFFER
        box = (minx - pad, miny - pad, maxx + pad, maxy + pad)
        hits = np.sort(self.tree.query(shapely.box(*box)))
        if not len(hits):
            return []
        shapes = self.geoms[hits]
        # Lines and polygons: clipped to the padded tile and cut down to one tile unit.
        clipped = shapely.clip_by_rect(shapes, *box)
        simple = shapely.simplify(clipped, unit, preserve_topology=True)
        points = shapely.get_type_id(shapes) == 0
        out = np.where(points, shapes, simple)
        keep = self.brief if self.brief is not None and tile.z < self.detail_zoom else None
        feats = [{"geometry": g, "properties": self.properties[i] if keep is None else
                  {k: v for k, v in self.properties[i].items() if k in keep}}
                 for g, i in zip(out, hits, strict=True) if g is not None and not g.is_empty]
        if keep is None or not self.dissolve:
            return feats
        groups: dict[tuple[tuple[str, Any], ...], list[Any]] = {}
        for f in feats:
            groups.setdefault(tuple(sorted(f["properties"].items())), []).append(f["geometry"])
        return [{"geometry": shapely.union_all(shapes, grid_size=unit),
                 "properties": dict(props)} for props, shapes in groups.items()]


@dataclass(frozen=True)
class PointBins:
    """Points counted per square bin of `bin_px` screen pixels, aligned to the tile grid."""

    x: np.ndarray
    y: np.ndarray
    bin_px: int = 32

    @classmethod
    def of(cls, lonlat: Sequence[tuple[float, float]], bin_px: int = 32) -> PointBins:
        """Bins of WGS84 (lon, lat) points."""
        arr = np.asarray(lonlat, dtype=float).reshape(-1, 2)
        pts = gpd.GeoSeries(gpd.points_from_xy(arr[:, 0], arr[:, 1]), crs=4326).to_crs(3857)
        return cls(np.asarray(pts.x, dtype=float), np.asarray(pts.y, dtype=float), bin_px)

    def features(self, tile: TileKey) -> list[dict[str, Any]]:
        """One square per non-empty bin with `n` and `density` (points per km² on the ground)."""
        minx, miny, maxx, maxy = tile_bounds(tile)
        size = (maxx - minx) * self.bin_px / TILE_PX
        inside = (self.x >= minx) & (self.x < maxx) & (self.y >= miny) & (self.y < maxy)
        if not inside.any():
            return []
        i = np.floor((self.x[inside] - minx) / size).astype(int)
        j = np.floor((self.y[inside] - miny) / size).astype(int)
        keys, counts = np.unique(np.stack([i, j], axis=1), axis=0, return_counts=True)
        out = []
        for (bi, bj), n in zip(keys.tolist(), counts.tolist(), strict=True):
            x0, y0 = minx + bi * size, miny + bj * size
            # a Mercator metre is 1/cosh(y/R) of a real one
            density = n * 1e6 * math.cosh((y0 + size / 2) / EARTH_RADIUS_M) ** 2 / size ** 2
            out.append({"geometry": shapely.box(x0, y0, x0 + size, y0 + size),
                        "properties": {"n": int(n), "density": round(density, 1)}})
        return out


def encode_tile(tile: TileKey, layers: Mapping[str, FrameLayer | PointBins]) -> bytes:
    """The MVT of `tile` with one layer per entry (empty layers left out)."""
    minx, miny, maxx, _ = tile_bounds(tile)
    scale = EXTENT / (maxx - minx)
    parts = []
    for name, layer in layers.items():
        feats = layer.features(tile)
        if not feats:
            continue
        # Into tile units (y up; the encoder flips it), all at once: vectorised, not per shape.
        shapes = shapely.transform(np.asarray([f["geometry"] for f in feats], dtype=object),
                                   lambda c: (c - (minx, miny)) * scale)
        parts.append({"name": name, "features": [
            {"geometry": g, "properties": f["properties"]}
            for g, f in zip(shapes, feats, strict=True)]})
    if not parts:
        return b""
    return bytes(mapbox_vector_tile.encode(parts, default_options={
        "extents": EXTENT,
        "on_invalid_geometry": mapbox_vector_tile.encoder.on_invalid_geometry_make_valid}))
