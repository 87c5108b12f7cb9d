"""便民设施 public facilities: markets, toilets, EV charging, parking, service points."""

from typing import Literal

from pydantic import BaseModel, Field

from layers.base import LayerSpec
from layers.labels import FACILITY_KIND


class FacilityProperties(BaseModel):
    """Properties of a public facility."""

    name: str = Field(min_length=1)
    kind: Literal["farmers_market", "public_toilet", "ev_charging", "parking",
                  "convenience_point"]
    address: str
    opening_hours: str
    phone: str | None = None
    simulated: bool = True


SPEC = LayerSpec(
    id="facilities", table="facilities", title_zh="便民设施", geometry_type="Point", key="id",
    properties=FacilityProperties,
    popup_fields={"name": "名称", "kind": "类型", "address": "地址", "opening_hours": "开放时间"},
    style={"color": "#8e44ad", "radius": 5}, value_labels={"kind": FACILITY_KIND}, public=True,
    order_by="id",
)
