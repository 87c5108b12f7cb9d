"""Analysis results as vector tiles: the same features as the JSON, its scope, its versions."""

from __future__ import annotations

import math
from collections.abc import Iterator

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.deps import get_session
from api.main import create_app
from tests.analysis.test_analysis_api import BBOX_Q, build_city
from tests.analysis.test_dark_streets import BBOX, insert_light
from tests.geo.test_vector_tiles import tiles_covering
from tests.support.accounts import headers_for
from tests.support.databases import move_data_versions

Z = 15
HOTSPOT_Q = {"end": "2024-05-13T00:00:00+08:00", "days": 7, "resolution": 10}


def tiles_over(bbox: tuple[float, float, float, float], z: int) -> list[tuple[int, int]]:
    """(x, y) of the XYZ tiles at `z` covering a lon/lat box."""
    def xy(lon: float, lat: float) -> tuple[int, int]:
        n = 1 << z
        y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
        return int((lon + 180) / 360 * n), int(y)
    x1, y1 = xy(bbox[0], bbox[3])
    x2, y2 = xy(bbox[2], bbox[1])
    return [(x, y) for x in range(x1, x2 + 1) for y in range(y1, y2 + 1)]


def tile_values(client: TestClient, path: str, layer: str, key: str,
                params: dict[str, object]) -> set[object]:
    """The `key` property of every feature of `layer` in the tiles over the test bbox."""
    seen: set[object] = set()
    for x, y in tiles_over(BBOX, Z):
        r = client.get(f"/tiles/analysis/{path}/{layer}/{Z}/{x}/{y}.pbf", params=params)
        assert r.status_code == 200, r.text
        if r.content:
            decoded = mapbox_vector_tile.decode(r.content)
            seen |= {f["properties"][key] for f in decoded.get(layer, {}).get("features", [])}
    return seen


@pytest.fixture
def app(test_settings, session: Session):
    build_city(session)
    app = create_app(test_settings)
    app.dependency_overrides[get_session] = lambda: session
    return app


@pytest.fixture
def client(app, session: Session) -> Iterator[TestClient]:
    with TestClient(app, headers=headers_for(session, "analyst")) as c:
        yield c


def test_coverage_tiles_hold_the_json_grids(client: TestClient) -> None:
    params = {"bbox": BBOX_Q, "threshold_m": 500}
    body = client.get("/analysis/coverage-gaps", params=params).json()
    gaps = {f["properties"]["grid_code"] for f in body["features"]
            if not f["properties"]["covered"]}
    covered = {f["properties"]["grid_code"] for f in body["features"]
               if f["properties"]["covered"]}
    assert len(gaps) == 15 and len(covered) == 5
    assert tile_values(client, "coverage-gaps", "gaps", "grid_code", params) == gaps
    assert tile_values(client, "coverage-gaps", "covered", "grid_code", params) == covered
    # Below tile zoom 14 grids are merged by their flags (the low-zoom tiles' bytes).
    for z, keys in ((13, {"covered", "review"}), (Z, None)):
        for x, y in tiles_over(BBOX, z):
            r = client.get(f"/tiles/analysis/coverage-gaps/gaps/{z}/{x}/{y}.pbf", params=params)
            for f in (mapbox_vector_tile.decode(r.content)["gaps"]["features"]
                      if r.content else []):
                if keys is None:
                    assert "station_name" in f["properties"]
                else:
                    assert set(f["properties"]) <= keys


def test_hotspot_and_risk_tiles(client: TestClient) -> None:
    params = {"bbox": BBOX_Q, **HOTSPOT_Q}
    body = client.get("/analysis/hotspots", params=params).json()
    cells = {f["properties"]["cell"] for f in body["features"]}
    assert cells and tile_values(client, "hotspots", "cells", "cell", params) == cells
    # The heat counts the window's three complaints once each (bins never span two tiles).
    heat = 0
    for x, y in tiles_over(BBOX, Z):
        r = client.get(f"/tiles/analysis/hotspots/heat/{Z}/{x}/{y}.pbf", params=params)
        if r.content:
            heat += sum(f["properties"]["n"] for f in
                        mapbox_vector_tile.decode(r.content)["heat"]["features"])
    assert heat == 3
    risks = client.get("/analysis/cover-risk", params={"bbox": BBOX_Q}).json()
    codes = {f["properties"]["code"] for f in risks["features"]}
    assert codes and tile_values(client, "cover-risk", "covers", "code",
                                 {"bbox": BBOX_Q}) == codes


def test_an_edit_reaches_the_next_tile(client: TestClient, session: Session) -> None:
    params = {"bbox": BBOX_Q, "step_m": 4}
    before = tile_values(client, "dark-streets", "stretches", "road_name", params)
    assert "亮灯路" in before
    # Lights fill 亮灯路's 80 m hole: its dark stretch is gone from the tiles at once.
    for i, x in enumerate((120, 140, 160)):
        insert_light(session, 100 + i, x, -500)
    move_data_versions(session)  # the versions move at commit (migration 0030), as the app's would
    after = tile_values(client, "dark-streets", "stretches", "road_name", params)
    assert "亮灯路" not in after and after == before - {"亮灯路"}


def test_tiles_are_staff_only(app, session: Session) -> None:
    with TestClient(app) as anonymous:
        for path in ("coverage-gaps/gaps", "dark-streets/stretches", "hotspots/heat",
                     "cover-risk/covers"):
            r = anonymous.get(f"/tiles/analysis/{path}/{Z}/0/0.pbf")
            assert r.status_code == 401, (path, r.text)
    with TestClient(app, headers=headers_for(session, "analyst")) as c:
        for path in ("coverage-gaps/nope", "nope/gaps"):
            assert c.get(f"/tiles/analysis/{path}/{Z}/0/0.pbf").status_code in (404, 422)
        assert c.get("/tiles/analysis/cover-risk/covers/21/0/0.pbf").status_code in (404, 422)


def heat_sum(client: TestClient, headers: dict[str, str], tiles, params) -> int:
    total = 0
    for x, y in tiles:
        r = client.get(f"/tiles/analysis/hotspots/heat/12/{x}/{y}.pbf", params=params,
                       headers=headers)
        assert r.status_code == 200, r.text
        if r.content:
            total += sum(f["properties"]["n"] for f in
                         mapbox_vector_tile.decode(r.content)["heat"]["features"])
    return total


def test_a_grid_owners_tiles_hold_what_their_json_holds(demo_client, demo_engine) -> None:
    with demo_engine.connect() as conn:
        owner = conn.execute(text("""
            SELECT o.owner_name FROM grid_owners o JOIN cases c ON c.grid_code = o.grid_code
            WHERE o.valid_to IS NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1""")).scalar_one()
    params = {"days": 30, "permutations": 99}
    tiles = tiles_covering(demo_engine, 12)
    sums = {}
    for who, headers in (("owner", headers_for(demo_engine, "grid_owner", owner_name=owner)),
                         ("analyst", headers_for(demo_engine, "analyst"))):
        body = demo_client.get("/analysis/hotspots", params=params, headers=headers).json()
        sums[who] = heat_sum(demo_client, headers, tiles, params)
        if who == "owner":  # (the analyst's heat also holds complaints outside any district)
            assert sums[who] == sum(f["properties"]["cases"] for f in body["features"])
    assert 0 < sums["owner"] < sums["analyst"]
