"""Suggestions while typing for the staff search box (`GET /geocode/suggest`): addresses,
places, roads, communities, grid codes, case numbers and coordinates from one string."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.auth import staff_only
from api.deps import SessionDep, SettingsDep
from gis.geocoding.suggest import MAX_SUGGESTIONS, SuggestResult, suggest
from gis.platform.errors import InvalidInputError

router = APIRouter(tags=["geocoding"], dependencies=[staff_only])


@router.get("/geocode/suggest", response_model=SuggestResult,
            summary="Suggestions while typing (地址、地名、网格、案件号、坐标)")
def geocode_suggest(
        session: SessionDep, settings: SettingsDep,
        q: Annotated[str, Query(description="what was typed: 泉城路180号, 省立医院, 370102..."
                                            " (grid code prefix), a case number, "
                                            "117.05,36.66 or 36.66,117.05")],
        limit: Annotated[int, Query(description=f"most suggestions, 1-{MAX_SUGGESTIONS}")] = 8,
        crs: Annotated[str, Query(description="CRS of typed coordinates: wgs84, gcj02, "
                                              "bd09, cgcs2000")] = "wgs84",
) -> SuggestResult:
    """Ranked suggestions, each with a WGS84 point and its grid; 400 naming a bad value."""
    try:
        return suggest(session, q, city=settings.city, limit=limit, crs=crs)
    except InvalidInputError as exc:
        # A search box's text is the request: a bad one is a plain 400, not a field error.
        raise HTTPException(status_code=400, detail=str(exc)) from exc
