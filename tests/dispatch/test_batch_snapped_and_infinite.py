"""Batch routing defects (issue 13.7): snapped rows keep near_boundary and nearest_other_grid
in both engines, and infinite coordinates are named as such (batch and single)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.deps import get_session
from api.main import create_app
from gis.dispatch.routing_batch import route_file, route_frame
from gis.platform.errors import InvalidInputError
from tests.dispatch.test_routing import CITY, SETTINGS, A, build_city, route
from tests.support.accounts import headers_for

M = 1 / 111_000  # about a metre of latitude here
# Below the bottom edge (y 36.660) of A03 | A04, 1 m east of their shared edge (x 117.031):
# 5 m out (the other grid is ~5.1 m away: near the boundary), 20 m and 45 m out (not near).
SNAPPED = [(117.031 + 1.1 * M, 36.660 - 5 * M), (117.031 + 1.1 * M, 36.660 - 20 * M),
           (117.031 + 1.1 * M, 36.660 - 45 * M)]


@pytest.fixture
def city(session: Session) -> Session:
    build_city(session)
    return session


@pytest.mark.parametrize("batch_engine", ["index", "sql"])
def test_snapped_rows_keep_boundary_facts_like_single_routing(city: Session,
                                                             batch_engine: str) -> None:
    settings = SETTINGS.model_copy(update={"batch_engine": batch_engine})
    frame = pd.DataFrame({"lon": [p[0] for p in SNAPPED], "lat": [p[1] for p in SNAPPED],
                          "at": "2025-09-15 10:00"})
    out = route_frame(city.connection(), frame, settings=settings, city=CITY)
    for (x, y), (_, row) in zip(SNAPPED, out.iterrows(), strict=True):
        single = route(city, x, y, at=datetime(2025, 9, 15, 10, 0))
        assert single.snapped and row["snapped"]
        assert row["grid_code"] == single.grid_code == f"{A}04"
        assert bool(row["near_boundary"]) == single.near_boundary
        assert row["nearest_other_grid"] == single.nearest_other_grid == f"{A}03"
        assert row["other_grid_distance_m"] == pytest.approx(single.other_grid_distance_m,
                                                             abs=0.05)
    assert [bool(v) for v in out["near_boundary"]] == [True, False, False]


@pytest.mark.parametrize("value", ["inf", "-inf", "1e999", "Infinity"])
def test_infinite_coordinates_are_not_a_finite_number(city: Session, tmp_path: Path,
                                                      value: str) -> None:
    path = tmp_path / "export.csv"
    pd.DataFrame({"lon": [value, "117.0315"], "lat": ["36.6605", value],
                  "at": "2025-09-15 10:00"}).to_csv(path, index=False)
    out = pd.read_csv(route_file(city.connection(), path, settings=SETTINGS, city=CITY),
                      dtype=str, keep_default_na=False)
    reasons = list(out["reason"])
    assert "not a finite number" in reasons[0] and reasons[0].startswith("x ")
    assert "not a finite number" in reasons[1] and reasons[1].startswith("y ")
    assert not any("nan" in r.lower() for r in reasons)


def test_single_point_says_not_a_finite_number(city: Session, test_settings) -> None:
    with pytest.raises(InvalidInputError, match="x inf is not a finite number"):
        route(city, float("inf"), 36.6605)
    app = create_app(test_settings)
    app.dependency_overrides[get_session] = lambda: city
    with TestClient(app, headers=headers_for(city, "dispatcher")) as client:
        response = client.post("/route", content=b'{"x": 1e999, "y": 36.6605}',
                               headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "finite number" in response.text and "nan" not in response.text.lower()
