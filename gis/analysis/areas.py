"""Which unit grid, street (街道) and district hold a point: the areas an analysis reports by."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session


def locate_areas(session: Session, lon: np.ndarray, lat: np.ndarray) -> pd.DataFrame:
    """grid_code, street_code, district_code of each point (None where outside every area).

    A point inside a unit grid takes its codes from the grid code prefix (12-digit community,
    9-digit street, 6-digit district); otherwise the street and district polygons decide.
    """
    rows = session.execute(text("""
        SELECT p.n, g.code, coalesce(left(g.code, 9), s.code),
               coalesce(left(g.code, 6), s.district_code, d.code)
        FROM unnest(CAST(:lon AS float8[]), CAST(:lat AS float8[])) WITH ORDINALITY
             AS p(x, y, n)
        CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(p.x, p.y), 4326) AS pt) q
        LEFT JOIN LATERAL (SELECT code FROM grid_cells WHERE ST_Intersects(geom, q.pt)
                           ORDER BY code LIMIT 1) g ON true
        LEFT JOIN LATERAL (SELECT code, district_code FROM subdistricts
                           WHERE g.code IS NULL AND ST_Intersects(geom, q.pt)
                           ORDER BY code LIMIT 1) s ON true
        LEFT JOIN LATERAL (SELECT code FROM districts
                           WHERE g.code IS NULL AND s.code IS NULL AND ST_Intersects(geom, q.pt)
                           ORDER BY code LIMIT 1) d ON true
        ORDER BY p.n
    """), {"lon": [float(v) for v in lon], "lat": [float(v) for v in lat]}).all()
    return pd.DataFrame([r[1:] for r in rows],
                        columns=["grid_code", "street_code", "district_code"], dtype=object)
