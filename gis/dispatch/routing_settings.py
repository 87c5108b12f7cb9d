"""Routing distances and limits, read from the environment (prefix CITYGRID_ROUTING_)."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RoutingSettings(BaseSettings):
    """How far routing reaches: snapping, boundary warning, component linking, batch sizes."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_ROUTING_", extra="ignore")

    # A pin just outside the outermost grid (GPS error, a kerb drawn a little inside) still
    # belongs to the city; farther away it is somebody else's problem.
    max_snap_m: float = Field(default=50.0, ge=0)
    boundary_m: float = Field(default=10.0, ge=0)
    component_link_m: float = Field(default=10.0, ge=0)
    # City time: naive datetimes are read in it, aware ones converted to it for dates and slots.
    timezone: str = "Asia/Shanghai"
    batch_chunk_rows: int = Field(default=200_000, ge=1_000)
    # Batch routing on the in-process index (gis.dispatch.engine, same answers, much faster)
    # or set-based SQL in PostGIS (the reference; also the fallback when the index refuses).
    batch_engine: Literal["index", "sql"] = "index"
    # Threads sharing a batch's points on the index (numpy, shapely and pyproj release the GIL).
    batch_threads: int = Field(default=2, ge=1, le=64)
    # POST /route on the same index (gis.dispatch.engine.single, one version-check query per
    # request) or the per-point SQL of gis.dispatch.routing (the reference).
    single_engine: Literal["index", "sql"] = "index"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        """Refuse a timezone name the tz database does not know."""
        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The city's timezone."""
        return ZoneInfo(self.timezone)
