"""道路 road segments with their street class (示范街 / 规范街 / 商业街)."""

from typing import Literal

from pydantic import BaseModel, Field

from layers.base import LayerSpec
from layers.labels import STREET_CLASS


class RoadProperties(BaseModel):
    """Properties of a road segment."""

    name: str = Field(min_length=1)
    street_class: Literal["demonstration", "managed", "commercial", "other"]
    width_m: float = Field(gt=0, le=200)
    simulated: bool = True


SPEC = LayerSpec(
    id="roads", table="roads", title_zh="道路", geometry_type="LineString", key="id",
    properties=RoadProperties,
    popup_fields={"name": "路名", "street_class": "街道类别", "width_m": "宽度(m)"},
    style={"color": "#636363", "weight": 2,
           "class_colors": {"demonstration": "#e41a1c", "managed": "#377eb8",
                            "commercial": "#ff7f00", "other": "#999999"}},
    value_labels={"street_class": STREET_CLASS}, public=True, order_by="id",
)
