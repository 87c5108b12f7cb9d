"""路灯 streetlights: component class 0118."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from layers.base import LayerSpec
from layers.labels import COMPONENT_STATE


class StreetlightProperties(BaseModel):
    """Properties of a streetlight."""

    code: str = Field(pattern=r"^\d{6}0118\d{6}$", description="16-digit component code")
    state: Literal["intact", "damaged", "missing", "occupied"] = "intact"
    lit: bool = True
    in_use: bool = True
    owner: str = Field(min_length=1)
    maintainer: str = Field(min_length=1)
    grid_code: str | None = Field(default=None, pattern=r"^\d{14}(\d)?$")
    recorded_at: datetime | None = None
    simulated: bool = True


SPEC = LayerSpec(
    id="streetlights", table="streetlights", title_zh="路灯", geometry_type="Point", key="code",
    properties=StreetlightProperties,
    popup_fields={"code": "部件编码", "state": "状态", "lit": "亮灯", "owner": "权属单位"},
    style={"color": "#fdae61", "radius": 2, "broken_color": "#000000"},
    value_labels={"state": COMPONENT_STATE}, public=True, order_by="code",
)
