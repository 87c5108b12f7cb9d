"""Analysis results kept in process, keyed by the data versions of the tables they read.

Every table an analysis reads has a counter in `data_versions` (migration 0022) that the
editing transaction moves. A result is reused while those counters, the parameters and the
caller's row-level-security scope are unchanged, so a warm call costs one small query; any
edit to an input makes the next call compute afresh. Results that depend on the clock (cover
risk "hours waited", a period still running) are reused only for `max_age` seconds, and every
result says when it was computed.

Stale while refreshing: cases change all day, and each change moves the versions of the
case-driven analyses (a report took 2-7 s to compute afresh). Where the caller gives a
`refresh` (the same computation on a session of its own) and `stale_for`, a call after an
edit gets the previous result for the same parameters and scope, if it is at most `stale_for`
seconds old, and a background thread computes the new one (once per key at a time) on a new
session bound like the caller's: same database role and the same after-begin hook (actor,
district, grid-owner scope), so row-level security scopes it exactly as the request. A result
built from a stale one (a page rendering a stale report) is not kept, and says the stale
result's time.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gis.analysis.common import CHINA_TZ

T = TypeVar("T")
_log = logging.getLogger(__name__)
# Set while a computation runs: the time of the oldest stale result it used, if any.
_STALE_AS_OF: contextvars.ContextVar[dt.datetime | None] = contextvars.ContextVar(
    "citygrid_stale_as_of", default=None)

# What each analysis reads (its page's context layers included): an edit elsewhere keeps it.
_PLACES = ("districts", "subdistricts", "communities", "grid_cells")
_CASES = ("cases", "case_transitions", "case_extensions", "event_categories",
          "component_classes", "grid_owners")
INPUTS: dict[str, tuple[str, ...]] = {
    "coverage": (*_PLACES, "stations", "roads"),
    "dark_streets": ("districts", "roads", "streetlights"),
    "cover_risk": (*_PLACES, "manhole_covers", *_CASES),
    "hotspots": (*_PLACES, "roads", *_CASES),
    "indicators": (*_PLACES, *_CASES, "deadline_rules"),
    "report": (*_PLACES, *_CASES, "deadline_rules", "manhole_covers", "case_media"),
    # Pages kept the same way: the planner map (its live zones and what they are checked on).
    "planner_page": ("districts", "roads", "sensitive_sites", "stall_zones"),
}


@dataclass(frozen=True)
class CachedResult(Generic[T]):
    """A result, when it was computed, and whether this call reused it."""

    value: T
    computed_at: dt.datetime
    reused: bool
    refreshing: bool = False  # a stale result; the new one is being computed


@dataclass(frozen=True)
class _Entry:
    value: object
    computed_at: dt.datetime
    monotonic: float


class ResultCache:
    """A bounded, thread-safe map from (analysis, parameters, scope, versions) to results."""

    def __init__(self, *, max_entries: int = 64) -> None:
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        # The latest result per (analysis, parameters, scope), whatever the versions.
        self._latest: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._refreshing: set[Hashable] = set()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def fetch(self, session: Session, *, analysis: str, params: Hashable,
              compute: Callable[[], T], max_age: float | None = None,
              refresh: Callable[[Session], T] | None = None,
              stale_for: float = 0.0) -> CachedResult[T]:
        """The result of `compute` for these parameters, reused while its inputs are unchanged.

        `max_age` (seconds) bounds the reuse of results that depend on the clock; None means
        they depend only on the data and the parameters. With `refresh` and `stale_for`, a
        changed input gets the previous result (at most `stale_for` seconds old) at once and
        `refresh` runs in the background (see the module's docstring).
        """
        scope_key = read_scope_and_versions(session, INPUTS[analysis])
        key = (analysis, params, *scope_key)
        latest_key = (analysis, params, *scope_key[:2])
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (max_age is None or now - entry.monotonic <= max_age):
                self._entries.move_to_end(key)
                return CachedResult(cast(T, entry.value), entry.computed_at, reused=True)
            # A session on a shared connection (tests' rolled-back transactions) cannot be
            # copied for another thread: computed in the request as before.
            refreshable = refresh is not None and isinstance(session.get_bind(), Engine)
            stale = self._latest.get(latest_key) if refreshable else None
            # A clock-bound result is fresh for max_age, then servable stale for stale_for.
            window = stale_for + (max_age if max_age is not None and max_age > 0 else 0.0)
            if stale is not None and stale_for > 0 and now - stale.monotonic <= window:
                start = latest_key not in self._refreshing
                self._refreshing.add(latest_key)
            else:
                stale = None
        if stale is not None:
            if start:
                _start_refresh(self, session, analysis, params, latest_key,
                               cast(Callable[[Session], object], refresh))
            used = _STALE_AS_OF.get()
            _STALE_AS_OF.set(stale.computed_at if used is None else min(used, stale.computed_at))
            return CachedResult(cast(T, stale.value), stale.computed_at, reused=True,
                                refreshing=True)
        computed_at = dt.datetime.now(CHINA_TZ)
        outer = _STALE_AS_OF.get()
        _STALE_AS_OF.set(None)
        try:
            value = compute()
            stale_as_of = _STALE_AS_OF.get()
        finally:
            _STALE_AS_OF.set(outer)
        if stale_as_of is not None:
            # Built from a stale result: not kept, and as old as that result.
            _STALE_AS_OF.set(stale_as_of if outer is None else min(outer, stale_as_of))
            return CachedResult(value, stale_as_of, reused=False, refreshing=True)
        self._store(key, latest_key, _Entry(value, computed_at, now))
        return CachedResult(value, computed_at, reused=False)

    def _store(self, key: Hashable, latest_key: Hashable, entry: _Entry) -> None:
        with self._lock:
            for table, k in ((self._entries, key), (self._latest, latest_key)):
                table[k] = entry
                table.move_to_end(k)
                while len(table) > self.max_entries:
                    table.popitem(last=False)

    def _refreshed(self, key: Hashable, latest_key: Hashable, value: object,
                   computed_at: dt.datetime, started: float) -> None:
        """Keep a background result (under the versions read before it was computed)."""
        self._store(key, latest_key, _Entry(value, computed_at, started))

    def _done(self, latest_key: Hashable) -> None:
        with self._lock:
            self._refreshing.discard(latest_key)

    def clear(self) -> None:
        """Forget every result (tests, or after a bulk load from another process)."""
        with self._lock:
            self._entries.clear()
            self._latest.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _start_refresh(cache: ResultCache, session: Session, analysis: str, params: Hashable,
                   latest_key: Hashable, refresh: Callable[[Session], object]) -> None:
    """Compute `refresh` on a new session bound like `session`, in a daemon thread."""
    bind = session.get_bind()
    on_begin = session.info.get("citygrid_on_begin")  # api.auth.bind_user's scope hook

    def run() -> None:
        started = time.monotonic()
        try:
            with Session(bind=bind) as fresh:
                if on_begin is not None:
                    fresh.info["citygrid_on_begin"] = on_begin
                    event.listen(fresh, "after_begin", on_begin)
                # Versions first: the result holds at least what they say.
                scope_key = read_scope_and_versions(fresh, INPUTS[analysis])
                if (analysis, params, *scope_key[:2]) != latest_key:
                    # Never store a result under another caller's scope.
                    raise RuntimeError(f"refresh ran as {scope_key[:2]}, not {latest_key}")
                computed_at = dt.datetime.now(CHINA_TZ)
                value = refresh(fresh)
                cache._refreshed((analysis, params, *scope_key), latest_key, value,
                                 computed_at, started)
        except Exception:  # logged; the next call after stale_for computes in its request
            _log.exception("background refresh of %s failed", analysis)
        finally:
            cache._done(latest_key)

    threading.Thread(target=run, name=f"refresh-{analysis}", daemon=True).start()


def read_scope_and_versions(session: Session, tables: Sequence[str]
                            ) -> tuple[str, str, tuple[int, ...]]:
    """The caller's database role (with @district for district staff) and grid-owner scope,
    and the versions of `tables`."""
    row = session.execute(text("""
        SELECT current_user::text || coalesce('@' || citygrid_actor_district(), ''),
               coalesce(current_setting('citygrid.owner_name', true), ''),
               coalesce((SELECT array_agg(version ORDER BY table_name) FROM data_versions
                         WHERE table_name = ANY(:tables)), '{}')"""),
                          {"tables": list(tables)}).one()
    # Row-level security: a grid owner's result is theirs alone, so the scope is in the key;
    # so is a district sub-centre's (migration 0028: the app role seeing one district's cases).
    return str(row[0]), str(row[1]), tuple(int(v) for v in row[2])
