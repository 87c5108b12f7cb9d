"""The analyses' default views computed into the result cache right after startup.

A new process has an empty result cache, so the first visitor of each analysis map or report
waited for it to be computed in the request (1.3-3.4 s on the demo city). A daemon thread
computes the default views (the parameters the pages open with, whole city, today's daily,
weekly and monthly report) on sessions of the app's runtime role without a user: the scope of
city-wide staff (no district, no grid owner), so their requests find them under the same
keys (gis.analysis.result_cache). Startup never waits for it, shutdown stops it between two
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
from api.routes import hotspots as hotspot_routes
from api.warmup import start_warmup, stop_warmup
from gis.analysis.common import CHINA_TZ

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
    return start_warmup(app, "analysis_warmup", WARMUP_THREAD,
                        lambda stop: warm_analyses(app, stop))


def stop_analysis_warmup(app: FastAPI) -> None:
    """Stop the warm-up thread (between two views) before the engines are disposed."""
    stop_warmup(app, "analysis_warmup", timeout=30)
