"""Station coverage gaps on dask: grids split into parts, stations and the network broadcast.

The stations, the walk network and the stations' joins to it are read and built once here
(gis.analysis.station_coverage.read_coverage_inputs) and sent to every worker once; the grids
are cut into parts of `part_size` in grid-code order, and each part is measured on a worker by
gis.analysis.station_coverage.coverage_cells, the function of the single-process run. A grid's
row depends only on that grid, the stations and the network: its straight distance is a
cKDTree query, its walk a Dijkstra from the stations' joins over the network with the part's
grid joins splitting their segments. Splitting a segment at other grids' feet (as one run
over all grids does) adds no path, so the walks are the same; the metres are summed over
different pieces of the same segments, which can differ in the last bits of a double, far
below the 0.01 m to which distances are rounded (tests compare every column for equality).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd
from sqlalchemy.orm import Session

from gis.analysis.common import DEFAULT_METRIC_EPSG, BBox
from gis.analysis.station_coverage import (
    COLUMNS,
    CoverageInputs,
    CoverageRun,
    Method,
    coverage_about,
    coverage_cells,
    coverage_parameters,
    read_coverage_inputs,
)

if TYPE_CHECKING:
    from distributed import Client

DEFAULT_PART_SIZE = 2000  # grids per task


def _part_cells(grids: gpd.GeoDataFrame, inputs: CoverageInputs, *, threshold_m: float,
                max_snap_m: float) -> gpd.GeoDataFrame:
    """Map step: coverage rows of one part of the grids."""
    return coverage_cells(inputs, grids, threshold_m=threshold_m, max_snap_m=max_snap_m)


def distributed_coverage(session: Session, *, client: Client | None,
                         threshold_m: float = 1000.0, method: Method = "auto",
                         bbox: BBox | None = None, metric_epsg: int = DEFAULT_METRIC_EPSG,
                         max_snap_m: float = 200.0, part_size: int = DEFAULT_PART_SIZE
                         ) -> CoverageRun:
    """Same CoverageRun as gis.analysis.station_coverage.run_coverage, grid parts on dask."""
    inputs = read_coverage_inputs(session, threshold_m=threshold_m, method=method, bbox=bbox,
                                  metric_epsg=metric_epsg, max_snap_m=max_snap_m)
    grids = inputs.grids
    parts = [grids.iloc[i:i + part_size] for i in range(0, len(grids), max(part_size, 1))]
    # Only the grids travel per task: the inputs without them go to each worker once.
    shared = CoverageInputs(grids.iloc[:0], inputs.stations, inputs.network,
                            inputs.source_joins, inputs.report)
    step = partial(_part_cells, threshold_m=threshold_m, max_snap_m=max_snap_m)
    if client is None:
        results = [step(part, shared) for part in parts]
    else:
        # Scattered once to every worker; a future passed as an argument arrives resolved.
        future = client.scatter(shared, broadcast=True)
        results = client.gather(client.map(step, parts, [future] * len(parts), pure=False))
    cells = (gpd.GeoDataFrame(pd.concat(results, ignore_index=True), geometry="geom",
                              crs=grids.crs) if results
             else coverage_cells(inputs, grids, threshold_m=threshold_m,
                                 max_snap_m=max_snap_m))
    cells = cells[COLUMNS]
    parameters = coverage_parameters(threshold_m, method, max_snap_m, bbox, metric_epsg)
    return CoverageRun(cells, inputs.report, coverage_about(
        cells, inputs.report, parameters, bbox=bbox, use_network=inputs.network is not None))
