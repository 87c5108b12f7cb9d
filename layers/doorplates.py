"""门牌 doorplates: road + number (+ 甲/乙 or -2 suffix), or compound + building number.

Imported through the generic layer import (CSV with lon/lat, or x/y plus a CRS; GeoPackage;
Shapefile): the schema checks each row's number, suffix and road-or-compound form, the import
checks the city extent, and the database (migration 0024) refuses a road the city does not
have, naming it. Every write bumps the gazetteer version (migration 0015), so the geocoder's
in-memory index reads the new plates on its next query, without a restart.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from layers.base import LayerSpec


class DoorplateProperties(BaseModel):
    """Properties of a doorplate (GB/T 39609 门楼牌)."""

    road_name: str | None = Field(default=None, min_length=1, max_length=60,
                                  description="the road's own name, as in the roads layer")
    number: int | None = Field(default=None, ge=1, le=99999, description="180 of 180号")
    suffix: str = Field(default="", pattern=r"^(|[甲乙丙丁]|-[0-9]{1,3})$",
                        description="甲/乙/丙/丁 or -2 (180-2号); empty for none")
    compound_id: int | None = Field(default=None, ge=1, description="compounds.id")
    building: str | None = Field(default=None, pattern=r"^[0-9A-Z]{1,6}$",
                                 description="3 of 3号楼")
    source: str = Field(default="import", min_length=1, max_length=200,
                        description="where the plate comes from: a file, a survey")
    simulated: bool = False

    @model_validator(mode="after")
    def road_or_compound(self) -> DoorplateProperties:
        """Either road + number or compound + building, never a mix."""
        road = self.road_name is not None or self.number is not None
        compound = self.compound_id is not None or self.building is not None
        if road and compound:
            raise ValueError("give road_name + number or compound_id + building, not both")
        if road and (self.road_name is None or self.number is None):
            raise ValueError("a road doorplate needs both road_name and number")
        if compound and (self.compound_id is None or self.building is None):
            raise ValueError("a compound doorplate needs both compound_id and building")
        if not road and not compound:
            raise ValueError("give road_name + number (or compound_id + building)")
        if compound and self.suffix:
            raise ValueError("a compound doorplate has no suffix")
        return self


SPEC = LayerSpec(
    id="doorplates", table="doorplates", title_zh="门牌", geometry_type="Point", key="id",
    properties=DoorplateProperties,
    popup_fields={"road_name": "道路", "number": "门牌号", "suffix": "附号",
                  "building": "楼号", "source": "来源"},
    style={"color": "#2c7fb8", "radius": 3}, order_by="id",
)
