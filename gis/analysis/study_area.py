"""Study areas of the area statistics: a district, street (街道) or community polygon.

A statistic that compares a place with "everywhere" needs "everywhere" to be where the events
can happen. The city's bounding rectangle is not: most of it lies outside the district, where
no complaint can be recorded. So the study area is a real polygon from the database, chosen by
its code (6 digits: district, 9: street, 12: community) or, without a code, the union of every
district; a bbox only clips it further. On H3 cells the area is the cells whose centre lies
inside the polygon (h3's own containment rule), so empty cells outside never enter the
statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import h3
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.common import BBox, bbox_params
from gis.platform.errors import InvalidInputError, NotFoundError

# Code length -> (table, Chinese kind): the three levels of the statistical division code.
AREA_TABLES = {6: ("districts", "区"), 9: ("subdistricts", "街道"), 12: ("communities", "社区")}


@dataclass(frozen=True)
class StudyArea:
    """A study area: its polygon (EPSG:4326), code (None for the whole city) and description."""

    geometry: BaseGeometry
    code: str | None
    name: str
    area_km2: float

    @property
    def label_zh(self) -> str:
        """E.g. '历下区 (370102)，面积 100.9 平方公里'."""
        code = f" ({self.code})" if self.code else ""
        return f"{self.name}{code}，面积 {self.area_km2:.1f} 平方公里"


def load_study_area(session: Session, *, code: str | None = None,
                    bbox: BBox | None = None) -> StudyArea:
    """The polygon of district/street/community `code` (all districts if None), clipped to bbox.

    Examples
    --------
    >>> area = load_study_area(session, code="370102")  # doctest: +SKIP
    >>> area.label_zh  # doctest: +SKIP
    '历下区 (370102)，面积 100.9 平方公里'
    """
    if code is not None:
        if not code.isdigit() or len(code) not in AREA_TABLES:
            raise InvalidInputError(f"study area code {code!r} must be 6 (district), 9 (street) "
                                    "or 12 (community) digits")
        table, _kind = AREA_TABLES[len(code)]
        row = session.execute(text(
            f"SELECT name, ST_AsBinary(geom), ST_Area(geom::geography) / 1e6 FROM {table} "
            "WHERE code = :code"), {"code": code}).first()
        if row is None:
            raise NotFoundError(f"no {table[:-1]} with code {code!r} to use as study area")
        name = row[0]
    else:
        row = session.execute(text(
            "SELECT string_agg(name, '、' ORDER BY code), ST_AsBinary(ST_Union(geom)), "
            "ST_Area(ST_Union(geom)::geography) / 1e6, count(*), min(code) "
            "FROM districts WHERE (CAST(:x1 AS float8) IS NULL OR geom && "
            "ST_MakeEnvelope(:x1, :y1, :x2, :y2, 4326))"), bbox_params(bbox)).first()
        if row is None or row[1] is None:
            raise NotFoundError("no district polygon to use as study area"
                                + (f" in bbox {bbox!r}" if bbox else ""))
        # One district is named with its code; several are listed (or counted).
        name = row[0] if row[3] <= 3 else f"全部辖区（{row[3]} 个区）"
        code = row[4] if row[3] == 1 else None
    geometry = shapely.from_wkb(bytes(row[1]))
    area_km2 = float(row[2])
    if bbox is not None:
        bbox_params(bbox)  # checks the order
        clipped = geometry.intersection(box(*bbox))
        if clipped.is_empty:
            raise NotFoundError(f"study area {name} does not meet bbox {bbox!r}")
        area_km2 *= clipped.area / geometry.area
        geometry, name = clipped, f"{name}（范围框内部分）"
    return StudyArea(geometry=geometry, code=code, name=name, area_km2=area_km2)


def area_cells(geometry: BaseGeometry, *, resolution: int) -> list[str]:
    """H3 cells whose centre lies inside `geometry` (EPSG:4326 Polygon or MultiPolygon).

    Examples
    --------
    >>> len(area_cells(box(117.0, 36.6, 117.01, 36.61), resolution=9)) > 5
    True
    """
    check_resolution(resolution)
    parts: Sequence[BaseGeometry] = getattr(geometry, "geoms", [geometry])
    cells: set[str] = set()
    for part in parts:
        if part.geom_type == "Polygon" and not part.is_empty:
            cells |= set(h3.geo_to_cells(part.__geo_interface__, resolution))
    return sorted(cells)


def check_resolution(resolution: int) -> None:
    """Refuse H3 resolutions outside what a city analysis needs (5 to 12)."""
    if not 5 <= resolution <= 12:
        raise InvalidInputError(f"H3 resolution must be 5 to 12 for city analysis, "
                                f"not {resolution!r}")
