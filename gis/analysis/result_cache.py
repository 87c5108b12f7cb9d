"""Analysis results kept in process, keyed by the data versions of the tables they read.

Every table an analysis reads has a counter in `data_versions` (migration 0022) that the
editing transaction moves. A result is reused while those counters, the parameters and the
caller's row-level-security scope are unchanged, so a warm call costs one small query; any
edit to an input makes the next call compute afresh. Results that depend on the clock (cover
risk "hours waited", a period still running) are reused only for `max_age` seconds, and every
result says when it was computed.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.common import CHINA_TZ

T = TypeVar("T")

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


@dataclass(frozen=True)
class _Entry:
    value: object
    computed_at: dt.datetime
    monotonic: float


class ResultCache:
    """A bounded, thread-safe map from (analysis, parameters, scope, versions) to results."""

    def __init__(self, *, max_entries: int = 64) -> None:
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def fetch(self, session: Session, *, analysis: str, params: Hashable,
              compute: Callable[[], T], max_age: float | None = None) -> CachedResult[T]:
        """The result of `compute` for these parameters, reused while its inputs are unchanged.

        `max_age` (seconds) bounds the reuse of results that depend on the clock; None means
        they depend only on the data and the parameters.
        """
        key = (analysis, params, *read_scope_and_versions(session, INPUTS[analysis]))
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (max_age is None or now - entry.monotonic <= max_age):
                self._entries.move_to_end(key)
                return CachedResult(cast(T, entry.value), entry.computed_at, reused=True)
        computed_at = dt.datetime.now(CHINA_TZ)
        value = compute()
        with self._lock:
            self._entries[key] = _Entry(value, computed_at, now)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return CachedResult(value, computed_at, reused=False)

    def clear(self) -> None:
        """Forget every result (tests, or after a bulk load from another process)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


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
