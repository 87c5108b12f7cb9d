"""Anonymous address search for the convenience map (`GET /public/geocode`): public places,
roads and doorplate addresses only, read through the public role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.deps import PublicSessionDep, SettingsDep
from gis.geocoding.public import (
    PUBLIC_MAX_CHARS,
    PUBLIC_MAX_LIMIT,
    PublicSuggestResult,
    public_suggest,
)
from gis.platform.errors import InvalidInputError

router = APIRouter(prefix="/public", tags=["public"])


@router.get("/geocode", response_model=PublicSuggestResult,
            summary="Search public places, roads and addresses (便民地图搜索)")
def public_geocode(
        session: PublicSessionDep, settings: SettingsDep,
        q: Annotated[str, Query(description=f"a place, road or address, at most "
                                            f"{PUBLIC_MAX_CHARS} characters: 泉城路180号, "
                                            "农贸市场, 经十路")],
        limit: Annotated[int, Query(description=f"most suggestions, 1-{PUBLIC_MAX_LIMIT}")] = 5,
) -> PublicSuggestResult:
    """Suggestions of kind place, road or address, each with a WGS84 point (no grid code)."""
    try:
        return public_suggest(session, q, city=settings.city, limit=limit)
    except InvalidInputError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
