"""The whole demo city generated in memory: one GeoDataFrame per table, no database."""

from __future__ import annotations

from dataclasses import dataclass, fields

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.demo import DEFAULT_SEED, METRIC_EPSG, STORAGE_EPSG
from gis.demo.assets import build_manhole_covers, build_streetlights
from gis.demo.case_history import RuleLookup
from gis.demo.cases import build_cases
from gis.demo.grid import build_grid_cells, build_grid_owners
from gis.demo.outline import district_frame
from gis.demo.partition import build_communities, build_subdistricts
from gis.demo.places import build_facilities, build_stations
from gis.demo.roads import build_roads
from gis.demo.stalls import build_stall_zones

# Each layer draws from its own stream, so changing one generator leaves the others alone.
STREAMS = {name: i for i, name in enumerate(
    ["subdistricts", "communities", "grid_owners", "roads", "streetlights", "manhole_covers",
     "stations", "facilities", "stall_zones", "cases"])}


def rng_for(seed: int, layer: str) -> np.random.Generator:
    """The random stream of one layer for a given seed."""
    return np.random.default_rng([seed, STREAMS[layer]])


@dataclass
class DemoCity:
    """Every generated table of the demo city; geometries in the metric CRS (EPSG:4548)."""

    districts: gpd.GeoDataFrame
    subdistricts: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    grid_cells: gpd.GeoDataFrame
    grid_owners: pd.DataFrame
    roads: gpd.GeoDataFrame
    streetlights: gpd.GeoDataFrame
    manhole_covers: gpd.GeoDataFrame
    stations: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame
    stall_zones: gpd.GeoDataFrame
    cases: gpd.GeoDataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """Table name → frame, in the order they must be inserted (foreign keys)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def generate_divisions(seed: int = DEFAULT_SEED) -> tuple[gpd.GeoDataFrame, ...]:
    """District (metric), simulated streets, communities and unit grid cells; the cheap part."""
    district = district_frame().to_crs(METRIC_EPSG)
    outline = district.geometry.iat[0]
    streets = build_subdistricts(outline, rng_for(seed, "subdistricts"))
    communities = build_communities(streets, rng_for(seed, "communities"))
    return district, streets, communities, build_grid_cells(communities)


def generate_city(seed: int = DEFAULT_SEED, *, component_owners: dict[str, str],
                  component_names: dict[str, str],
                  event_names: dict[str, str], now: pd.Timestamp,
                  deadline_rule: RuleLookup) -> DemoCity:
    """The whole city for `seed`, its case history up to `now`; code tables and deadline
    rules come from the database (they are configuration)."""
    district, streets, communities, grid = generate_divisions(seed)
    outline = district.geometry.iat[0]
    roads = build_roads(outline, rng_for(seed, "roads"))
    return DemoCity(
        districts=district, subdistricts=streets, communities=communities, grid_cells=grid,
        grid_owners=build_grid_owners(list(grid["code"]), rng_for(seed, "grid_owners")),
        roads=roads,
        streetlights=build_streetlights(roads, grid, rng_for(seed, "streetlights")),
        manhole_covers=build_manhole_covers(roads, grid, component_owners,
                                            rng_for(seed, "manhole_covers")),
        stations=build_stations(communities, roads, rng_for(seed, "stations")),
        facilities=build_facilities(outline, roads, rng_for(seed, "facilities")),
        stall_zones=build_stall_zones(outline, roads, streets, rng_for(seed, "stall_zones"),
                                      today=now.tz_convert("Asia/Shanghai").date()),
        cases=build_cases(outline, grid, rng_for(seed, "cases"), events=event_names,
                          components=component_names, now=now, rule=deadline_rule),
    )


def to_storage(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with geometries in the storage CRS (EPSG:4326); plain tables pass through."""
    if not isinstance(frame, gpd.GeoDataFrame):
        return frame
    if frame.crs is not None and frame.crs.to_epsg() == STORAGE_EPSG:
        return frame
    return frame.to_crs(STORAGE_EPSG)
