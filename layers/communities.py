"""社区 communities: real names and codes, simulated outlines."""

from pydantic import BaseModel, Field

from layers.base import LayerSpec


class CommunityProperties(BaseModel):
    """Properties of a community (社区)."""

    code: str = Field(pattern=r"^\d{12}$", description="12-digit statistical code")
    name: str = Field(min_length=1)
    subdistrict_code: str = Field(pattern=r"^\d{9}$")
    simulated: bool = True


SPEC = LayerSpec(
    id="communities", table="communities", title_zh="社区", geometry_type="MultiPolygon",
    key="code", properties=CommunityProperties,
    popup_fields={"name": "社区", "code": "代码", "simulated": "模拟边界"},
    style={"color": "#c2a5cf", "weight": 1, "fillOpacity": 0.05}, public=True, order_by="code",
)
