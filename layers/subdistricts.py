"""街道 subdistricts: real names and codes, simulated outlines."""

from pydantic import BaseModel, Field

from layers.base import LayerSpec


class SubdistrictProperties(BaseModel):
    """Properties of a subdistrict (街道)."""

    code: str = Field(pattern=r"^\d{9}$", description="9-digit statistical code")
    name: str = Field(min_length=1)
    district_code: str = Field(pattern=r"^\d{6}$")
    simulated: bool = True


SPEC = LayerSpec(
    id="subdistricts", table="subdistricts", title_zh="街道", geometry_type="MultiPolygon",
    key="code", properties=SubdistrictProperties,
    popup_fields={"name": "街道", "code": "代码", "simulated": "模拟边界"},
    style={"color": "#7b3294", "weight": 2, "fillOpacity": 0.05}, public=True, order_by="code",
)
