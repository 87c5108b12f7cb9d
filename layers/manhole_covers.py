"""井盖 manhole covers: component classes 0101-0114; the class decides the owner."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from layers.base import LayerSpec
from layers.labels import COMPONENT_STATE


class ManholeCoverProperties(BaseModel):
    """Properties of a manhole cover."""

    code: str = Field(pattern=r"^\d{6}01(0\d|1[0-4])\d{6}$", description="16-digit code")
    cover_class: str | None = Field(default=None, description="minor class, from the code")
    state: Literal["intact", "damaged", "missing", "occupied"] = "intact"
    in_use: bool = True
    owner: str = Field(min_length=1)
    maintainer: str = Field(min_length=1)
    grid_code: str | None = Field(default=None, pattern=r"^\d{14}(\d)?$")
    recorded_at: datetime | None = None
    simulated: bool = True


SPEC = LayerSpec(
    id="manhole_covers", table="manhole_covers", title_zh="井盖", geometry_type="Point",
    key="code", properties=ManholeCoverProperties,
    popup_fields={"code": "部件编码", "cover_class": "井盖类别", "state": "状态",
                  "owner": "权属单位"},
    style={"color": "#2b83ba", "radius": 2}, value_labels={"state": COMPONENT_STATE},
    generated=("cover_class",), order_by="code",
)
