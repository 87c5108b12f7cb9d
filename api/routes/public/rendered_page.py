"""The public map page's rendered HTML, kept per process and keyed by what went into it.

Rendering the page (folium + its template, about 170 ms of the ~200 ms the handler took) does
not change between requests while the places, their "open now" state, the outlines and the
page's time (to the minute) stay the same. The key is a hash of exactly those inputs, read
from the `pub` views on every request (~20 ms), so an edited facility or a new opening hour
shows on the next request: no version counter the public role could not read is needed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import shapely

MAX_PAGES = 32  # one per minute of "open now" per base map, and a few ?at= pages
_LOCK = threading.Lock()


def inputs_key(data: Any, districts: gpd.GeoDataFrame) -> str:
    """A hash of the page's JSON-ready inputs and the district outlines."""
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str,
                                       ensure_ascii=False).encode())
    digest.update("\x00".join(map(str, districts.get("name", []))).encode())
    for wkb in shapely.to_wkb(districts.geometry.values):
        digest.update(wkb)
    return digest.hexdigest()


def cached_page(state: Any, key: str, render: Callable[[], str]) -> tuple[str, bool]:
    """The page under `key` (and True), or `render()`'s, kept for the next request (False)."""
    pages: OrderedDict[str, str] | None = getattr(state, "public_pages", None)
    if pages is None:
        pages = state.public_pages = OrderedDict()
    with _LOCK:
        html = pages.get(key)
        if html is not None:
            pages.move_to_end(key)
            return html, True
    html = render()  # outside the lock: two first visitors render in parallel, both correct
    with _LOCK:
        pages[key] = html
        while len(pages) > MAX_PAGES:
            pages.popitem(last=False)
    return html, False
