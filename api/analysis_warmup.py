"""The analyses' default views computed into the result cache right after startup.

A new process has an empty result cache, so the first visitor of each analysis map or report
waited for it to be computed in the request (1.3-3.4 s on the demo city). A daemon thread
computes the default views (the parameters the pages open with, whole city, today's daily,
weekly and monthly report) on sessions of the app's runtime role without a user: the scope of
city-wide staff (no district, no grid owner), so their requests find them under the same
keys (gis.analysis.result_cache); then the analysis maps' first-view tiles of those results
(api.routes.analysis_tiles). Startup never waits for it, shutdown stops it between two
views, and a view asked for before it is warm is computed by its request as before. District
staff and grid owners have scopes of their own and still compute theirs.
`CITYGRID_API_WARM_ANALYSES=false` turns it off (the test suite does, for speed).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session

from api.deps import BBox
from api.routes import analysis as analysis_routes
from api.routes import analysis_tiles as tile_routes
from api.routes import hotspots as hotspot_routes
from api.tile_warmup import city_extent, fitted_view_tiles
from api.warmup import start_warmup, stop_warmup
from gis.analysis.common import CHINA_TZ
from gis.geo.tiles import TileKey

log = logging.getLogger(__name__)
WARMUP_THREAD = "citygrid-analysis-warmup"


def default_views(app: FastAPI) -> list[tuple[str, Callable[[Session], Any]]]:
    """(name, computation on a session) of every view warmed, in the order warmed."""
    holder: Any = SimpleNamespace(app=app)  # what the cache helpers read of a request
    settings = app.state.settings
    today = dt.datetime.now(CHINA_TZ).date()
    views: list[tuple[str, Callable[[Session], Any]]] = [
        ("cover risk", lambda s: analysis_routes._cover_risks(holder, s, BBox())),
        ("dark streets", lambda s: analysis_routes._dark_streets(
            holder, s, settings, analysis_routes.DarkStreetParams(), None)),
        ("hotspots", lambda s: hotspot_routes._run(holder, s, hotspot_routes.HotspotParams(),
                                                   BBox())),
        ("coverage gaps", lambda s: analysis_routes._coverage(
            holder, s, settings, analysis_routes.CoverageParams(), None)),
    ]
    def report(period: str) -> Callable[[Session], Any]:
        return lambda s: analysis_routes._report(holder, s, settings, period, today, None)

    views += [(f"{period} report", report(period)) for period in ("daily", "weekly", "monthly")]
    return views


def default_tile_layers(app: FastAPI) -> list[tuple[str, Callable[[Session, TileKey], Any]]]:
    """(name, tile of the default view on a session) of every analysis map's tiled layer."""
    holder: Any = SimpleNamespace(app=app, headers={})  # what the tile routes read of a request
    staff: Any = SimpleNamespace(is_grid_owner=False, district_code=None)  # city-wide scope
    settings = app.state.settings
    coverage, dark = analysis_routes.CoverageParams(), analysis_routes.DarkStreetParams()
    spots = hotspot_routes.HotspotParams()

    def coverage_part(part: Any) -> Callable[[Session, TileKey], Any]:
        return lambda s, t: tile_routes.coverage_tile(holder, part, t.z, t.x, t.y, s,
                                                      settings, coverage, BBox(), staff)

    def hotspot_part(part: Any) -> Callable[[Session, TileKey], Any]:
        return lambda s, t: tile_routes.hotspots_tile(holder, part, t.z, t.x, t.y, s, spots,
                                                      BBox(), staff)

    return [
        ("coverage gaps", coverage_part("gaps")),
        ("coverage covered", coverage_part("covered")),
        ("dark streets", lambda s, t: tile_routes.dark_streets_tile(
            holder, "stretches", t.z, t.x, t.y, s, settings, dark, BBox(), staff)),
        ("hotspot cells", hotspot_part("cells")),
        ("hotspot heat", hotspot_part("heat")),
        ("cover risk", lambda s, t: tile_routes.cover_risk_tile(
            holder, "covers", t.z, t.x, t.y, s, BBox(), staff)),
    ]


def warm_result_tiles(app: FastAPI, stop: threading.Event) -> int:
    """Render the analysis maps' first-view tiles into the tile cache; returns how many were.

    The maps fit their results to the screen, so the tiles are those of a screen centred on
    the city's districts at the fitted zooms (api.tile_warmup), as the base map's are.
    """
    extent = city_extent(app)
    if extent is None:
        return 0
    tiles = fitted_view_tiles(extent)
    done = 0
    for name, layer in default_tile_layers(app):
        try:
            with app.state.sessionmaker() as session:
                for tile in tiles:
                    if stop.is_set():
                        return done
                    layer(session, tile)
                    done += 1
        except Exception:  # its first visitor renders it instead
            log.warning("tile warm-up of %s failed", name, exc_info=True)
    return done


def warm_analyses(app: FastAPI, stop: threading.Event) -> int:
    """Compute the default views into the app's result cache; returns how many were."""
    done = 0
    for name, view in default_views(app):
        if stop.is_set():
            break
        try:
            with app.state.sessionmaker() as session:
                view(session)
            done += 1
        except Exception:  # a view that fails is computed by its first request instead
            log.warning("analysis warm-up of %s failed", name, exc_info=True)
    return done


def start_analysis_warmup(app: FastAPI) -> threading.Event:
    """Warm the default views in a daemon thread; set the returned event to stop."""
    def work(stop: threading.Event) -> int:
        # The results first (every page needs them), then their maps' first tiles.
        return warm_analyses(app, stop) + warm_result_tiles(app, stop)

    return start_warmup(app, "analysis_warmup", WARMUP_THREAD, work)


def stop_analysis_warmup(app: FastAPI) -> None:
    """Stop the warm-up thread (between two views) before the engines are disposed."""
    stop_warmup(app, "analysis_warmup", timeout=30)
