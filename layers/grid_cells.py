"""单元网格 unit grid cells: 14- or 15-digit codes, area computed by the database."""

from pydantic import BaseModel, Field

from layers.base import LayerSpec


class GridCellProperties(BaseModel):
    """Properties of a unit grid cell."""

    code: str = Field(pattern=r"^\d{14}(\d)?$", description="community code + 2 or 3 digits")
    community_code: str = Field(pattern=r"^\d{12}$")
    area_m2: float | None = Field(default=None, description="computed on geography, m²")
    simulated: bool = True


SPEC = LayerSpec(
    id="grid_cells", table="grid_cells", title_zh="单元网格", geometry_type="Polygon", key="code",
    properties=GridCellProperties,
    popup_fields={"code": "网格编码", "community_code": "社区代码", "area_m2": "面积(m²)"},
    style={"color": "#3182bd", "weight": 0.5, "fillOpacity": 0.03}, generated=("area_m2",),
    order_by="code",
)
