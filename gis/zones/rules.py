"""The city's stall zone rules: a TOML file over defaults taken from DOMAIN.md.

Each city writes its own file (see rules_default.toml) and points CITYGRID_ZONES_RULES_FILE at
it. Keys the file leaves out keep the defaults, so a file only has to say what differs.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gis.platform.errors import InvalidInputError

DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "rules_default.toml"
SiteKind = Literal["school_gate", "kindergarten", "hospital", "metro_exit"]


class ZoneSettings(BaseSettings):
    """Where the city's stall zone rules file is (env CITYGRID_ZONES_RULES_FILE)."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_ZONES_", extra="ignore")

    rules_file: Path = DEFAULT_RULES_FILE

    @field_validator("rules_file")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        """Allow ~ in the path."""
        return value.expanduser()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DemonstrationStreetRule(_Section):
    """示范街: no zone on the street or within `buffer_m` of its edge."""

    buffer_m: float = Field(default=10.0, ge=0)


class SensitiveDistances(_Section):
    """Minimum distance (m) from each kind of sensitive site."""

    school_gate: float = Field(default=100.0, ge=0)
    kindergarten: float = Field(default=100.0, ge=0)
    hospital: float = Field(default=100.0, ge=0)
    metro_exit: float = Field(default=50.0, ge=0)


class FireLaneRule(_Section):
    """Fire lanes keep this width clear unless the lane says otherwise."""

    clear_width_m: float = Field(default=4.0, gt=0)


class PedestrianClearance(_Section):
    """Walkway (m) a zone must leave free on a street, by street class."""

    managed: float = Field(default=2.0, ge=0)
    commercial: float = Field(default=1.5, ge=0)
    other: float = Field(default=1.5, ge=0)


class CapacityRule(_Section):
    """Area per stall: net stall plus its share of the aisles."""

    stall_m2: float = Field(default=2.0, gt=0)
    aisle_m2: float = Field(default=3.0, ge=0)

    @property
    def gross_m2(self) -> float:
        """Square metres one stall needs, aisle included."""
        return self.stall_m2 + self.aisle_m2


ZoneStatus = Literal["draft", "approved"]


def _live_statuses() -> list[ZoneStatus]:
    return ["draft", "approved"]


class OverlapRule(_Section):
    """Which other zones a zone may not share space and time with."""

    min_area_m2: float = Field(default=0.5, ge=0)
    statuses: list[ZoneStatus] = Field(default_factory=_live_statuses)


class DistrictRule(_Section):
    """How much of a zone may lie outside its district (digitising noise)."""

    tolerance_m2: float = Field(default=0.5, ge=0)


class GeometryLimits(_Section):
    """How large a drawn zone polygon may be: a stall zone is a few corners, not a coastline."""

    max_vertices: int = Field(default=10_000, ge=4)


class ZoneRules(_Section):
    """Every stall zone rule of one city."""

    timezone: str = "Asia/Shanghai"
    demonstration_street: DemonstrationStreetRule = Field(
        default_factory=DemonstrationStreetRule)
    sensitive_distance_m: SensitiveDistances = Field(default_factory=SensitiveDistances)
    fire_lane: FireLaneRule = Field(default_factory=FireLaneRule)
    pedestrian_clearance_m: PedestrianClearance = Field(default_factory=PedestrianClearance)
    capacity: CapacityRule = Field(default_factory=CapacityRule)
    overlap: OverlapRule = Field(default_factory=OverlapRule)
    district: DistrictRule = Field(default_factory=DistrictRule)
    geometry: GeometryLimits = Field(default_factory=GeometryLimits)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        """Refuse a timezone name the tz database does not know."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The city's timezone."""
        return ZoneInfo(self.timezone)


def load_rules(path: Path | None = None) -> ZoneRules:
    """Rules from `path` (default: ZoneSettings().rules_file) over the built-in defaults."""
    path = path or ZoneSettings().rules_file
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"zone rules file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"zone rules file {str(path)!r} is not valid TOML: {exc}") from None
    try:
        return ZoneRules.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise InvalidInputError(f"zone rules file {str(path)!r}: {problems}") from None
