"""Request dependencies: one session per request, settings, paging and bbox parameters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from api.params import MAX_OFFSET_ROWS
from gis.platform.errors import InvalidInputError
from gis.platform.settings import Settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; the route commits, anything else rolls back."""
    with request.app.state.sessionmaker() as session:
        yield session


def get_settings(request: Request) -> Settings:
    """Settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_public_session(request: Request) -> Iterator[Session]:
    """One read-only session per anonymous request, as the public role (schema `pub` only)."""
    with request.app.state.public_sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
PublicSessionDep = Annotated[Session, Depends(get_public_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass
class BBox:
    """Optional bounding box filter in WGS84."""

    bbox: Annotated[str | None, Query(
        description="lon_min,lat_min,lon_max,lat_max in WGS84 (EPSG:4326)",
        examples=["117.00,36.64,117.05,36.68"])] = None

    def bounds(self) -> tuple[float, float, float, float] | None:
        """Parsed and checked bounds, or None."""
        if self.bbox is None:
            return None
        try:
            parts = [float(p) for p in self.bbox.split(",")]
        except ValueError:
            raise InvalidInputError(f"bbox {self.bbox!r} must be four numbers") from None
        if len(parts) != 4:
            raise InvalidInputError(f"bbox {self.bbox!r} must have 4 numbers, not {len(parts)}")
        x1, y1, x2, y2 = parts
        if not all(-180 <= x <= 180 for x in (x1, x2)) or not all(-90 <= y <= 90 for y in (y1, y2)):
            raise InvalidInputError(f"bbox {self.bbox!r} is outside lon/lat range (EPSG:4326)")
        if x1 >= x2 or y1 >= y2:
            raise InvalidInputError(f"bbox {self.bbox!r} needs min < max")
        return x1, y1, x2, y2


@dataclass
class Paging:
    """limit / offset paging."""

    limit: Annotated[int, Query(ge=1, le=10_000, description="features per page")] = 100
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET_ROWS, description="features to skip")] = 0


BBoxDep = Annotated[BBox, Depends()]
PagingDep = Annotated[Paging, Depends()]
