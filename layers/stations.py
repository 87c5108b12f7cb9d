"""社区城管工作站 community stations."""

from pydantic import BaseModel, Field

from layers.base import LayerSpec

PHONE = r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$"


class StationProperties(BaseModel):
    """Properties of a community station."""

    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    address: str
    phone: str = Field(pattern=PHONE)
    staff: int = Field(ge=0)
    opening_hours: str
    community_code: str | None = Field(default=None, pattern=r"^\d{12}$")
    simulated: bool = True


SPEC = LayerSpec(
    id="stations", table="stations", title_zh="社区城管工作站", geometry_type="Point", key="id",
    properties=StationProperties,
    popup_fields={"name": "名称", "address": "地址", "phone": "电话", "staff": "人员",
                  "opening_hours": "开放时间"},
    style={"color": "#d7191c", "radius": 6, "fillOpacity": 0.9}, public=True, order_by="id",
)
