"""What a planner sends for a zone: a GeoJSON Feature whose properties are a `ZoneInput`.

The stored layer schema (layers.stall_zones) sits above gis in the import order, so the input
schema lives here; the two must keep the same field names.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from shapely.errors import GEOSException
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry

from gis.platform.errors import CrsMismatchError, InvalidInputError
from gis.zones.timeslots import Schedule, parse_schedule

HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
MMDD = r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"
ZONE_TYPES = ("morning_market", "night_market", "seasonal_produce", "convenience_point",
              "featured_outdoor")
MAX_VERTICES = 10_000  # default of ZoneRules.geometry.max_vertices
# GeoJSON (RFC 7946) is WGS84; old-style "crs" members naming it are accepted.
WGS84_NAMES = {"EPSG:4326", "urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:EPSG::4326",
               "OGC:CRS84"}


class TimeSlotInput(BaseModel):
    """A weekly slot; end at or before start runs past midnight."""

    days: list[int] = Field(min_length=1, description="ISO weekdays 1=Mon .. 7=Sun")
    start: str = Field(pattern=HHMM, examples=["18:00"])
    end: str = Field(pattern=HHMM, examples=["02:00"])


class SeasonInput(BaseModel):
    """A yearly date range, MM-DD to MM-DD inclusive."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", pattern=MMDD, examples=["06-01"])
    to: str = Field(pattern=MMDD, examples=["09-29"])


class ZoneInput(BaseModel):
    """Properties of a zone as drawn by a planner (district and grids are derived)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    zone_type: Literal["morning_market", "night_market", "seasonal_produce",
                       "convenience_point", "featured_outdoor"]
    time_slots: list[TimeSlotInput] = Field(min_length=1)
    seasons: list[SeasonInput] = Field(default_factory=list)
    capacity: int = Field(gt=0, le=100_000, description="number of stalls")
    operator: str = Field(min_length=1, max_length=200)
    district_code: str | None = Field(default=None, pattern=r"^\d{6}$",
                                      description="checked against the drawn polygon if given")
    simulated: bool = False

    @model_validator(mode="after")
    def _schedule_parses(self) -> ZoneInput:
        """Reject slots the schedule parser refuses (e.g. 08:00-08:00)."""
        self.schedule()
        return self

    def schedule(self) -> Schedule:
        """The parsed schedule of this zone."""
        return parse_schedule(self.slots_json(), self.seasons_json())

    def slots_json(self) -> list[dict[str, Any]]:
        """time_slots as stored (jsonb)."""
        return [{"days": sorted(set(s.days)), "start": s.start, "end": s.end}
                for s in self.time_slots]

    def seasons_json(self) -> list[dict[str, str]]:
        """seasons as stored (jsonb)."""
        return [{"from": s.from_, "to": s.to} for s in self.seasons]


def parse_zone_feature(feature: Any, *,
                       max_vertices: int = MAX_VERTICES) -> tuple[ZoneInput, Polygon]:
    """Properties and polygon of a GeoJSON Feature; InvalidInputError naming what is wrong."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        kind = feature.get("type") if isinstance(feature, dict) else type(feature).__name__
        raise InvalidInputError(f"expected a GeoJSON Feature, got {kind!r}")
    crs = feature.get("crs")
    if crs is not None:
        name = (crs.get("properties") or {}).get("name") if isinstance(crs, dict) else crs
        if name not in WGS84_NAMES:
            raise CrsMismatchError(f"zone arrived in CRS {name!r}; expected EPSG:4326 (WGS84)")
    try:
        props = ZoneInput.model_validate(feature.get("properties") or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'properties'}: {e['msg']}"
                             for e in exc.errors())
        raise InvalidInputError(f"zone properties: {problems}") from None
    return props, parse_polygon(feature.get("geometry"), max_vertices=max_vertices)


def _is_coordinate(value: object) -> bool:
    """A finite number that could be a coordinate (a 400-digit int overflows `float`)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= 10**9
    return isinstance(value, float) and math.isfinite(value)


def parse_polygon(geometry: Any, *, max_vertices: int = MAX_VERTICES) -> Polygon:
    """A shapely Polygon from GeoJSON; structural problems only (validity is PostGIS's job)."""
    if not isinstance(geometry, dict):
        raise InvalidInputError("zone has no geometry")
    if geometry.get("type") != "Polygon":
        raise InvalidInputError(
            f"zone geometry must be a Polygon, not {geometry.get('type')!r}")
    rings = geometry.get("coordinates")
    if not isinstance(rings, list | tuple) or not rings:
        raise InvalidInputError("zone polygon has no rings")
    # Counted before anything is built: a huge polygon is refused without the work.
    vertices = sum(len(ring) if isinstance(ring, list | tuple) else 0 for ring in rings)
    if vertices > max_vertices:
        raise InvalidInputError(f"zone polygon has {vertices} vertices; at most {max_vertices} "
                                f"are accepted")
    for i, ring in enumerate(rings):
        if not isinstance(ring, list | tuple) or len(ring) < 4:
            raise InvalidInputError(f"ring {i} of the zone polygon needs at least 4 positions "
                                    f"(3 corners and the closing one)")
        for position in ring:
            # NaN and Infinity pass json.loads; bool is an int to Python, not a coordinate.
            if (not isinstance(position, list | tuple) or len(position) < 2
                    or not all(_is_coordinate(c) for c in position)):
                shown = repr(position)
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                raise InvalidInputError(f"ring {i} of the zone polygon has position {shown}; "
                                        f"positions are [lon, lat] finite numbers")
        if list(ring[0]) != list(ring[-1]):
            raise InvalidInputError(f"ring {i} of the zone polygon is not closed: first "
                                    f"{ring[0]} != last {ring[-1]}")
    try:
        geom: BaseGeometry = shape(geometry)
    except (GEOSException, ValueError, TypeError, IndexError, KeyError) as exc:
        raise InvalidInputError(f"zone polygon coordinates are malformed: {exc}") from None
    if geom.has_z:
        raise InvalidInputError("zone polygon must be 2D (lon, lat)")
    assert isinstance(geom, Polygon)
    return geom
