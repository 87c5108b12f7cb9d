"""Read-side data for the dispatcher page (调度台): category choices, deadlines, background layers.

Deadlines come from gis.dispatch.deadlines.find_rule for every (category, urgency, area type, step),
so the page shows exactly the limits case creation and dispatch will apply, and holds no rule
logic of its own.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch.cases import AREA_TYPES, URGENCIES
from gis.dispatch.deadlines import STEPS, find_rule
from gis.platform.errors import NotFoundError

_CATEGORIES = {
    "event": "SELECT code, name_zh FROM event_categories ORDER BY code",
    "component": "SELECT code, name_zh FROM component_classes ORDER BY code",
}
_LAYERS = {
    "districts": "SELECT code AS id, name, geom FROM districts ORDER BY code",
    "subdistricts": "SELECT code AS id, name, geom FROM subdistricts ORDER BY code",
    "grid_cells": "SELECT code AS id, geom FROM grid_cells ORDER BY code",
    "stations": "SELECT code AS id, name, phone, geom FROM stations ORDER BY code",
}


def category_choices(session: Session) -> dict[str, list[dict[str, str]]]:
    """Event categories and component classes of the seed tables, as {type: [{code, name}]}."""
    return {kind: [{"code": str(r.code), "name": r.name_zh}
                   for r in session.execute(text(sql))]
            for kind, sql in _CATEGORIES.items()}


def deadline_matrix(session: Session, *, categories: dict[str, list[dict[str, str]]]
                    ) -> dict[str, dict[str, dict[str, Any] | None]]:
    """Time limit of each step keyed 'type:code:urgency:area' (None where no rule applies)."""
    notes: dict[int, str] = {
        row.id: row.note for row in session.execute(text("SELECT id, note FROM deadline_rules"))}
    matrix: dict[str, dict[str, dict[str, Any] | None]] = {}
    for category_type, rows in categories.items():
        for row in rows:
            for urgency in URGENCIES:
                for area_type in AREA_TYPES:
                    steps: dict[str, dict[str, Any] | None] = {}
                    for step in STEPS:
                        try:
                            rule = find_rule(session, category_type=category_type,
                                             category_code=row["code"], urgency=urgency,
                                             area_type=area_type, step=step)
                        except NotFoundError:
                            steps[step] = None
                            continue
                        steps[step] = {"duration": rule.duration, "unit": rule.unit,
                                       "rule_id": rule.id, "note": notes.get(rule.id) or ""}
                    key = f"{category_type}:{row['code']}:{urgency}:{area_type}"
                    matrix[key] = steps
    return matrix


def dispatcher_layers(session: Session) -> dict[str, gpd.GeoDataFrame]:
    """District, street and unit grid outlines and the stations, in EPSG:4326."""
    frames = {}
    for name, sql in _LAYERS.items():
        gdf = gpd.read_postgis(text(sql), session.connection(), geom_col="geom")
        frames[name] = gdf.set_crs(4326, allow_override=True)
    return frames
