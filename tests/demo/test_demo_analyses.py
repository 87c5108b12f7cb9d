"""The demo data exercises the analyses' rules: cover-risk levels, complaint clusters, gaps."""

from __future__ import annotations

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gis.analysis.cover_risk import find_cover_risks
from gis.demo import DEFAULT_SEED
from gis.demo.cases import CASE_COUNT, HOTSPOTS, _points, empty_areas
from gis.demo.city import generate_divisions, rng_for

EPSG = 4548


def test_cover_risk_levels_all_occur(demo_engine: Engine) -> None:
    with Session(demo_engine) as session:
        risks = find_cover_risks(session)
    counts = risks["risk"].value_counts().to_dict()
    # Damaged 30 min to 6 weeks before loading: every level has real members.
    assert set(counts) == {"high", "medium", "low"}
    assert min(counts.values()) >= 30, counts
    damaged = risks[risks["state"] == "damaged"]
    assert damaged["hours"].min() < 4 and damaged["hours"].max() > 24 * 7


def test_complaints_leave_the_empty_areas_empty(demo_engine: Engine) -> None:
    outline = generate_divisions(DEFAULT_SEED)[0].geometry.iat[0]
    empty = empty_areas(outline, rng_for(DEFAULT_SEED, "cases"))  # the first draws of "cases"
    assert empty.area > 1e6  # over 1 km² of park, lake and hill
    with demo_engine.connect() as conn:
        inside = conn.execute(text(f"""
            SELECT count(*) FROM cases
            WHERE simulated AND ST_Intersects(ST_Transform(geom, {EPSG}),
                                              ST_GeomFromText(:empty, {EPSG}))"""),
            {"empty": empty.wkt}).scalar_one()
        nearby = conn.execute(text(f"""
            SELECT count(*) FROM cases
            WHERE simulated AND ST_Intersects(ST_Transform(geom, {EPSG}),
                                              ST_GeomFromText(:ring, {EPSG}))"""),
            {"ring": empty.buffer(300).difference(empty).intersection(outline).wkt}
        ).scalar_one()
    assert inside == 0
    assert nearby > 100  # the emptiness is the area's, not a lack of cases around it


def test_complaint_clusters_are_several_hundred_metres_wide() -> None:
    outline = generate_divisions(DEFAULT_SEED)[0].geometry.iat[0]
    xy, which = _points(outline, rng_for(DEFAULT_SEED, "cases"), CASE_COUNT)
    for h in range(HOTSPOTS):
        pts = xy[which == h]
        centre = np.median(pts, axis=0)
        radius = np.hypot(*(pts - centre).T)
        # A dense core (half the points within ~100 m) in a wide halo (90 % reach > 200 m).
        assert np.quantile(radius, 0.3) < 100, (h, np.quantile(radius, 0.3))
        assert np.quantile(radius, 0.9) > 200, (h, np.quantile(radius, 0.9))
    assert shapely.contains_xy(outline, xy[:, 0], xy[:, 1]).all()
