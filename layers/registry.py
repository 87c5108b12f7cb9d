"""The registry of layers: generic routes, import, export and maps look layers up here."""

from __future__ import annotations

from gis.platform.errors import NotFoundError
from layers import (
    cases,
    communities,
    districts,
    doorplates,
    facilities,
    grid_cells,
    manhole_covers,
    roads,
    stall_zones,
    stations,
    streetlights,
    subdistricts,
)
from layers.base import LayerSpec

LAYERS: dict[str, LayerSpec] = {
    module.SPEC.id: module.SPEC
    for module in (districts, subdistricts, communities, grid_cells, stations, roads,
                   stall_zones, streetlights, manhole_covers, facilities, cases, doorplates)
}


def get_layer(layer_id: str) -> LayerSpec:
    """The layer named `layer_id`, or NotFoundError listing the known ones."""
    try:
        return LAYERS[layer_id]
    except KeyError:
        known = ", ".join(sorted(LAYERS))
        raise NotFoundError(f"unknown layer {layer_id!r}; known layers: {known}") from None
