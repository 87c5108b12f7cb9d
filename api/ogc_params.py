"""Bounds for the /ogc query parameters tipg leaves open (the CQL2 `filter` is api/ogc_filter.py).

tipg types `offset` as any non-negative integer and `simplify` as any float, and passes
`datetime` and the tilejson zooms on as text or unbounded integers, so `offset=10^20` overflows
PostgreSQL's bigint, `simplify=nan` or `-1` reaches PostGIS, and `minzoom=10^20` overflows in
morecantile, and an item id past bigint breaks cql2: each was a 500. `ogc_params_are_sane`
refuses them first, 422 naming the parameter (404 for an id no row can have).
"""

from __future__ import annotations

import math

from fastapi import HTTPException, Request

from api.params import MAX_OFFSET_ROWS, parse_moment

MAX_LIMIT = 10_000  # tipg's max_features_per_query
MAX_SIMPLIFY_DEGREES = 1.0  # ~100 km: coarser leaves nothing of a district
MAX_ZOOM = 30  # deeper than any TileMatrixSet tipg serves


def _integer(name: str, raw: str, low: int, high: int) -> None:
    try:
        value = int(raw)
    except ValueError:
        return  # not an integer: FastAPI's validation answers 422 naming the parameter
    if not low <= value <= high:
        raise HTTPException(status_code=422,
                            detail=f"{name}={raw[:40]!r} must be between {low} and {high}")


def _item_id(raw: str) -> None:
    digits = raw.strip().lstrip("+-")
    # An integer past bigint cannot be any row's id (cql2 and asyncpg fail on it: a 500).
    if digits.isascii() and digits.isdigit() and len(digits) > 18 and int(digits) >= 2**63:
        raise HTTPException(status_code=404, detail=f"no item has id {raw[:40]!r}")


def ogc_params_are_sane(request: Request) -> None:
    """422 for an /ogc paging, simplify, zoom or datetime value outside its sane range."""
    params = request.query_params
    if "itemId" in request.path_params:
        _item_id(str(request.path_params["itemId"]))
    for item in params.get("ids", "").split(","):
        _item_id(item)
    if "offset" in params:
        _integer("offset", params["offset"], 0, MAX_OFFSET_ROWS)
    if "limit" in params:
        _integer("limit", params["limit"], 0, MAX_LIMIT)
    for name in ("minzoom", "maxzoom"):
        if name in params:
            _integer(name, params[name], 0, MAX_ZOOM)
    if "simplify" in params:
        raw = params["simplify"]
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 <= value <= MAX_SIMPLIFY_DEGREES):
            raise HTTPException(status_code=422, detail=(
                f"simplify={raw[:40]!r} must be a number of degrees from 0 to "
                f"{MAX_SIMPLIFY_DEGREES}"))
    if params.get("datetime"):
        raw = params["datetime"]
        parts = raw.split("/")
        if len(parts) > 2:
            raise HTTPException(status_code=422, detail=(
                f"datetime={raw[:80]!r} must be one instant or an interval start/end"))
        for part in parts:
            if part in ("", ".."):
                continue
            try:
                parse_moment(part, name="datetime")
            except ValueError as exc:
                raise HTTPException(status_code=422, detail=str(exc)) from None
