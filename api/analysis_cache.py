"""The app's analysis result cache (gis.analysis.result_cache), one per process."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from fastapi import Request, Response
from sqlalchemy.orm import Session

from gis.analysis.result_cache import CachedResult, ResultCache

T = TypeVar("T")
R = TypeVar("R", bound=Response)
COMPUTED_AT = "X-Computed-At"
REFRESHING = "X-Refreshing"  # a stale result while the new one is computed


def analysis_cache(request: Request) -> ResultCache:
    """This process's cache, made on first use with the configured size."""
    app = request.app
    if not hasattr(app.state, "analysis_cache"):
        settings = app.state.settings
        app.state.analysis_cache = ResultCache(max_entries=settings.api.analysis_cache_entries)
    cache: ResultCache = app.state.analysis_cache
    return cache


def cached(request: Request, session: Session, analysis: str, params: Hashable,
           compute: Callable[[], T], *, clock: bool = False,
           refresh: Callable[[Session], T] | None = None) -> CachedResult[T]:
    """`compute()` reused while its inputs are unchanged; `clock`: it also ages with time.

    `refresh`: the same computation on a given session. With it, a call after an edit gets
    the previous result (analysis_stale_seconds at most) while the new one is computed in the
    background (gis.analysis.result_cache).
    """
    settings = request.app.state.settings
    max_age = settings.api.analysis_cache_seconds if clock else None
    if settings.api.analysis_cache_entries == 0:
        max_age = -1.0  # caching off: every call computes
        refresh = None
    return analysis_cache(request).fetch(session, analysis=analysis, params=params,
                                         compute=compute, max_age=max_age, refresh=refresh,
                                         stale_for=settings.api.analysis_stale_seconds)


def stamp(response: R, result: CachedResult[Any]) -> R:
    """Say on `response` when its figures were computed (ISO 8601, city time), and whether
    newer ones are being computed."""
    response.headers[COMPUTED_AT] = result.computed_at.isoformat(timespec="seconds")
    if result.refreshing:
        response.headers[REFRESHING] = "true"
    return response
