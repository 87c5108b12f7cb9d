"""摊群点 stall zones: type, district, recurring time slots, seasons, capacity, status."""

from typing import Literal

from pydantic import BaseModel, Field

from layers.base import LayerSpec
from layers.labels import ZONE_STATUS, ZONE_TYPE

HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
MMDD = r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"


class TimeSlot(BaseModel):
    """A weekly recurring slot; end before start means it runs past midnight."""

    days: list[int] = Field(min_length=1, description="ISO weekdays 1=Mon .. 7=Sun")
    start: str = Field(pattern=HHMM)
    end: str = Field(pattern=HHMM)


class Season(BaseModel):
    """A date range recurring every year, e.g. 06-01 to 09-29."""

    from_: str = Field(alias="from", pattern=MMDD)
    to: str = Field(pattern=MMDD)


class StallZoneProperties(BaseModel):
    """Properties of a stall zone."""

    name: str = Field(min_length=1)
    zone_type: Literal["morning_market", "night_market", "seasonal_produce",
                       "convenience_point", "featured_outdoor"]
    district_code: str = Field(pattern=r"^\d{6}$")
    time_slots: list[TimeSlot] = Field(min_length=1)
    seasons: list[Season] = Field(default_factory=list)
    capacity: int = Field(gt=0)
    operator: str = Field(min_length=1)
    status: Literal["draft", "approved", "retired"] = "draft"
    simulated: bool = True


SPEC = LayerSpec(
    id="stall_zones", table="stall_zones", title_zh="摊群点", geometry_type="Polygon", key="id",
    properties=StallZoneProperties,
    popup_fields={"name": "名称", "zone_type": "类型", "capacity": "摊位数", "operator": "管理方",
                  "status": "状态"},
    style={"color": "#1a9641", "weight": 2, "fillOpacity": 0.35},
    value_labels={"zone_type": ZONE_TYPE, "status": ZONE_STATUS}, public=True, order_by="id",
)
