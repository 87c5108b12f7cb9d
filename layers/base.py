"""What every layer declares: table, geometry, property schema, Chinese labels, map style."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class LayerSpec:
    """One data layer as the rest of the platform sees it."""

    id: str
    table: str
    title_zh: str
    geometry_type: str  # PostGIS type of the geom column: Point, LineString, Polygon, MultiPolygon
    key: str  # primary key column
    properties: type[BaseModel]  # schema of a feature's properties (import and API)
    popup_fields: dict[str, str]  # column -> Chinese label shown in map popups
    style: dict[str, Any] = field(default_factory=dict)  # Leaflet path / marker options
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)  # enum -> zh label
    generated: tuple[str, ...] = ()  # columns the database computes; never written
    public: bool = False  # may appear on public routes
    order_by: str | None = None

    @property
    def columns(self) -> list[str]:
        """Property columns in schema order (geometry excluded)."""
        return list(self.properties.model_fields)

    @property
    def writable_columns(self) -> list[str]:
        """Columns an import may write."""
        return [c for c in self.columns if c not in self.generated]
