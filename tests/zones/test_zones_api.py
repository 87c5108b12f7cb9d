"""The /zones API over real PostGIS: refusals with violations, versions, time and place queries.

The test town (tests.zones.test_zone_rules.build_town) is committed once for the module, further
south than the one the rule tests build inside rolled-back sessions; each test draws in its own
spot so committed zones never meet another test's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pyogrio
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from gis.platform.db import transaction
from tests.support.accounts import headers_for
from tests.zones.test_zone_rules import Town, build_town, test_city

FRIDAY_NIGHT = [{"days": [5], "start": "18:00", "end": "02:00"}]


@pytest.fixture(scope="module")
def town(engine: Engine) -> Town:
    with transaction(engine) as session:
        return build_town(session, lon=117.0, lat=35.9, prefix="9998")


@pytest.fixture(scope="module")
def client(engine: Engine, test_settings, town: Town) -> Iterator[TestClient]:
    settings = test_settings.model_copy(deep=True)
    settings.city = test_city(settings.city)
    with TestClient(create_app(settings), headers=headers_for(engine, "planner")) as c:
        yield c


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def post(client: TestClient, feature: dict[str, Any]) -> Any:
    return client.post("/zones", json=feature)


def test_create_then_read_back(client: TestClient, town: Town) -> None:
    response = post(client, town.zone(box(-20, 100, 20, 120), name="泉城夜市"))
    assert response.status_code == 201, response.json()
    zone = response.json()
    assert response.headers["location"] == f"/zones/{zone['id']}"
    props = zone["properties"]
    assert props["status"] == "draft" and props["version"] == 1
    assert props["district_code"] == town.district
    assert len(props["grid_codes"]) == 2 and props["simulated"] is False
    assert client.get(f"/zones/{zone['id']}").json() == zone
    versions = client.get(f"/zones/{zone['id']}/versions").json()["features"]
    assert [v["properties"]["changed_by"] for v in versions] == [
        client.get("/auth/me").json()["username"]]


@pytest.mark.parametrize("rule,geom", [
    ("demonstration_street", box(0, 1482, 30, 1488)),
    ("sensitive_site.school_gate", box(1380, -10, 1405, 10)),
    ("sensitive_site.metro_exit", box(-1455, -10, -1430, 10)),
    ("fire_lane", box(-498.5, 600, -480, 620)),
    ("pedestrian_clearance", box(0, -1520, 20, -1497.5)),
    ("district", box(1980, 300, 2010, 310)),
])
def test_rule_breaking_zone_is_refused_with_422_and_nothing_stored(
        client: TestClient, engine: Engine, town: Town, rule: str, geom) -> None:
    before = count(engine, "stall_zones"), count(engine, "stall_zone_versions")
    response = post(client, town.zone(geom))
    assert response.status_code == 422
    body = response.json()
    assert [v["properties"]["rule"] for v in body["violations"]] == [rule]
    violation = body["violations"][0]
    assert violation["type"] == "Feature" and violation["geometry"]["type"] == "Polygon"
    assert violation["properties"]["message_zh"] and violation["properties"]["message_en"]
    assert town.local(violation["geometry"]).area > 0
    assert (count(engine, "stall_zones"), count(engine, "stall_zone_versions")) == before


def test_capacity_refused_then_accepted(client: TestClient, town: Town) -> None:
    refused = post(client, town.zone(box(200, 200, 210, 210), capacity=21))
    assert refused.status_code == 422
    assert refused.json()["violations"][0]["properties"]["rule"] == "capacity"
    assert post(client, town.zone(box(200, 200, 210, 210), capacity=20)).status_code == 201


def test_overlapping_zones_need_disjoint_slots(client: TestClient, town: Town) -> None:
    first = post(client, town.zone(box(400, 400, 420, 420), time_slots=FRIDAY_NIGHT))
    assert first.status_code == 201
    clash = post(client, town.zone(box(410, 410, 430, 430), time_slots=[
        {"days": [6], "start": "01:00", "end": "03:00"}]))  # Friday's night is still on
    assert clash.status_code == 422
    violation = clash.json()["violations"][0]
    assert violation["properties"]["rule"] == "time_overlap"
    assert violation["properties"]["other_zone_id"] == first.json()["id"]
    assert town.local(violation["geometry"]).area == pytest.approx(100, rel=1e-3)
    morning = post(client, town.zone(box(410, 410, 430, 430), zone_type="morning_market",
                                     time_slots=[{"days": [6], "start": "05:00",
                                                  "end": "08:00"}]))
    assert morning.status_code == 201


def test_seasonal_zones_in_the_same_place(client: TestClient, town: Town) -> None:
    daily = [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "18:00", "end": "22:00"}]
    summer = post(client, town.zone(box(500, 500, 520, 520), zone_type="seasonal_produce",
                                    time_slots=daily, seasons=[{"from": "06-01", "to": "09-29"}]))
    assert summer.status_code == 201
    october = post(client, town.zone(box(500, 500, 520, 520), time_slots=daily,
                                     seasons=[{"from": "10-01", "to": "10-31"}]))
    assert october.status_code == 201
    late = post(client, town.zone(box(500, 500, 520, 520), time_slots=daily,
                                  seasons=[{"from": "09-20", "to": "10-05"}]))
    assert late.status_code == 422
    assert {v["properties"]["other_zone_id"] for v in late.json()["violations"]} == {
        summer.json()["id"], october.json()["id"]}


@pytest.mark.parametrize("ring", [
    [(0, 0), (20, 20), (20, 0), (0, 20), (0, 0)],  # bow-tie
    [(0, 0), (20, 0), (20, 20), (10, -5), (0, 20), (0, 0)],  # edge crossing another
])
def test_self_intersecting_polygon_is_422_with_reason_and_nothing_stored(
        client: TestClient, engine: Engine, town: Town, ring) -> None:
    from shapely.geometry import Point

    before = count(engine, "stall_zones")
    coords = [list(town.wgs84(Point(x + 700, y + 700)).coords[0]) for x, y in ring]
    feature = {**town.zone(box(0, 0, 1, 1)),
               "geometry": {"type": "Polygon", "coordinates": [coords]}}
    response = post(client, feature)
    assert response.status_code == 422
    body = response.json()
    assert "Self-intersection" in body["reason"]
    assert body["repair"]["offered"] is True and body["repair"]["applied"] is False
    assert body["repair"]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert count(engine, "stall_zones") == before


def _ring(town: Town, corners: Sequence[tuple[float, float]]) -> list[list[float]]:
    from shapely.geometry import Point

    return [list(town.wgs84(Point(x + 750, y + 750)).coords[0]) for x, y in corners]


SQUARE = [(0, 0), (20, 0), (20, 20), (0, 20), (0, 0)]


@pytest.mark.parametrize(("case", "named"), [
    ("unclosed ring", "not closed"),
    ("too few points", "at least 4 positions"),
    ("two-point ring", "at least 4 positions"),
    ("no rings", "no rings"),
    ("Point", "'Point'"),
    ("LineString", "'LineString'"),
    ("MultiPolygon", "'MultiPolygon'"),
    ("longitude out of range", "200"),
    ("latitude out of range", "95"),
    ("outside the city", "leave the city"),
    ("NaN coordinate", "nan"),
    ("infinite coordinate", "inf"),
    ("text coordinate", "'east'"),
    ("null coordinate", "None"),
    ("3D coordinates", "2D"),
    ("zero area", "no area"),
    ("no geometry", "no geometry"),
])
def test_malformed_polygon_is_422_naming_the_problem_and_nothing_stored(
        client: TestClient, engine: Engine, town: Town, case: str, named: str) -> None:
    ring = _ring(town, SQUARE)
    lon, lat = ring[0]
    geometry: Any = {
        "unclosed ring": {"type": "Polygon", "coordinates": [ring[:-1]]},
        "too few points": {"type": "Polygon", "coordinates": [[ring[0], ring[1], ring[0]]]},
        "two-point ring": {"type": "Polygon", "coordinates": [[ring[0], ring[1]]]},
        "no rings": {"type": "Polygon", "coordinates": []},
        "Point": {"type": "Point", "coordinates": ring[0]},
        "LineString": {"type": "LineString", "coordinates": ring[:3]},
        "MultiPolygon": {"type": "MultiPolygon", "coordinates": [[ring]]},
        "longitude out of range": {"type": "Polygon", "coordinates": [
            [[200.0, lat], *ring[1:-1], [200.0, lat]]]},
        "latitude out of range": {"type": "Polygon", "coordinates": [
            [[lon, 95.0], *ring[1:-1], [lon, 95.0]]]},
        "outside the city": {"type": "Polygon", "coordinates": [
            [[p[0] - 3, p[1]] for p in ring]]},
        "NaN coordinate": {"type": "Polygon", "coordinates": [
            [ring[0], [float("nan"), ring[1][1]], *ring[2:]]]},
        "infinite coordinate": {"type": "Polygon", "coordinates": [
            [ring[0], [ring[1][0], float("inf")], *ring[2:]]]},
        "text coordinate": {"type": "Polygon", "coordinates": [
            [ring[0], ["east", ring[1][1]], *ring[2:]]]},
        "null coordinate": {"type": "Polygon", "coordinates": [
            [ring[0], [None, ring[1][1]], *ring[2:]]]},
        "3D coordinates": {"type": "Polygon", "coordinates": [[[*p, 10.0] for p in ring]]},
        "zero area": {"type": "Polygon", "coordinates": [_ring(town, [
            (0, 0), (10, 0), (20, 0), (0, 0)])]},
        "no geometry": None,
    }[case]
    before = count(engine, "stall_zones"), count(engine, "stall_zone_versions")
    feature = {**town.zone(box(0, 0, 1, 1)), "geometry": geometry}
    # json.dumps writes NaN and Infinity literally (httpx's json= refuses them); Python's
    # parser on the server accepts them, so they do reach the zone code.
    raw = {"content": json.dumps(feature), "headers": {"Content-Type": "application/json"}}
    response = client.post("/zones", **raw)
    assert response.status_code == 422, response.text
    body = response.json()
    assert named in body["detail"], body
    assert client.post("/zones/check", **raw).status_code == 422
    assert (count(engine, "stall_zones"), count(engine, "stall_zone_versions")) == before


def test_malformed_feature_is_422_naming_the_problem(client: TestClient, town: Town) -> None:
    response = post(client, {"type": "FeatureCollection", "features": []})
    assert response.status_code == 422 and "Feature" in response.json()["detail"]
    response = post(client, town.zone(box(800, 800, 810, 810), zone_type="flea_market"))
    assert response.status_code == 422 and "zone_type" in response.json()["detail"]
    feature = {**town.zone(box(800, 800, 810, 810)), "crs": {
        "type": "name", "properties": {"name": "EPSG:4548"}}}
    response = post(client, feature)
    assert response.status_code == 422 and "EPSG:4548" in response.json()["detail"]


def test_update_keeps_every_version(client: TestClient, town: Town) -> None:
    created = post(client, town.zone(box(900, 900, 920, 920), name="历山路早市",
                                     zone_type="morning_market", time_slots=[
                                         {"days": [1, 2, 3, 4, 5], "start": "05:00",
                                          "end": "08:00"}]))
    zone_id = created.json()["id"]
    approved = client.post(f"/zones/{zone_id}/approve")
    assert approved.status_code == 200 and approved.json()["properties"]["status"] == "approved"
    changed = town.zone(box(900, 900, 930, 920), name="历山路早市", zone_type="morning_market",
                        capacity=30, time_slots=[{"days": [1, 2, 3, 4, 5], "start": "05:00",
                                                  "end": "08:30"}])
    updated = client.put(f"/zones/{zone_id}", json=changed, headers={"If-Match": "2"})
    assert updated.status_code == 200, updated.json()
    props = updated.json()["properties"]
    assert props["version"] == 3 and props["status"] == "draft"  # edits need a new review
    assert props["capacity"] == 30
    stale = client.put(f"/zones/{zone_id}", json=changed, headers={"If-Match": "2"})
    assert stale.status_code == 409 and "version 3" in stale.json()["detail"]
    too_big = town.zone(box(900, 900, 930, 920), capacity=1000)
    refused = client.put(f"/zones/{zone_id}", json=too_big)
    assert refused.status_code == 422
    retired = client.post(f"/zones/{zone_id}/retire")
    assert retired.json()["properties"]["status"] == "retired"
    versions = client.get(f"/zones/{zone_id}/versions").json()["features"]
    assert [(v["properties"]["version"], v["properties"]["action"], v["properties"]["status"])
            for v in versions] == [(1, "create", "draft"), (2, "approve", "approved"),
                                   (3, "update", "draft"), (4, "retire", "retired")]
    first, third = versions[0], versions[2]
    assert first["properties"]["capacity"] == 10 and third["properties"]["capacity"] == 30
    assert town.local(first["geometry"]).area == pytest.approx(400, rel=1e-3)
    assert town.local(third["geometry"]).area == pytest.approx(600, rel=1e-3)
    assert client.put(f"/zones/{zone_id}", json=changed).status_code == 409  # retired is final
    assert client.post(f"/zones/{zone_id}/approve").status_code == 409


def test_stale_version_in_properties_is_409_and_nothing_stored(client: TestClient,
                                                               engine: Engine,
                                                               town: Town) -> None:
    # The planner page sends the version it edited in properties.version, not If-Match.
    zone_id = post(client, town.zone(box(960, 900, 980, 920), name="版本夜市")).json()["id"]

    def edit(version: int, east: float) -> Any:
        feature = town.zone(box(960, 900, east, 920), name="版本夜市")
        feature["properties"]["version"] = version
        return client.put(f"/zones/{zone_id}", json=feature)

    first = edit(1, 985)
    assert first.status_code == 200, first.json()
    assert first.json()["properties"]["version"] == 2
    before = count(engine, "stall_zone_versions")
    stale = edit(1, 990)  # a second planner still looking at version 1
    assert stale.status_code == 409
    assert "version 2" in stale.json()["detail"] and "not 1" in stale.json()["detail"]
    assert count(engine, "stall_zone_versions") == before
    current = client.get(f"/zones/{zone_id}").json()
    assert current["properties"]["version"] == 2
    assert town.local(current["geometry"]).area == pytest.approx(500, rel=1e-3)
    with engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT version, ST_Area(ST_Transform(geom, 4548)) FROM stall_zones WHERE id = :i"),
            {"i": zone_id}).one()
    assert stored[0] == 2 and stored[1] == pytest.approx(500, rel=1e-2)
    assert edit(2, 990).status_code == 200  # the current version is accepted


def test_approved_zone_appears_on_the_public_map_when_open(client: TestClient,
                                                           town: Town) -> None:
    zone = post(client, town.zone(box(-800, -800, -780, -780), name="公开周五夜市",
                                  time_slots=FRIDAY_NIGHT)).json()

    def public_names(at: str, open_now: str = "true") -> set[str]:
        response = client.get("/public/stall-zones", params={"at": at, "open_now": open_now},
                              headers={"Authorization": ""})
        assert response.status_code == 200, response.text
        return {f["properties"]["name"] for f in response.json()["features"]}

    assert "公开周五夜市" not in public_names("2026-06-05T19:30", "false")  # a draft
    assert client.post(f"/zones/{zone['id']}/approve").status_code == 200
    assert "公开周五夜市" in public_names("2026-06-05T19:30")  # Friday night
    assert "公开周五夜市" in public_names("2026-06-06T01:30")  # past midnight
    assert "公开周五夜市" not in public_names("2026-06-05T10:00")  # closed in the morning
    assert "公开周五夜市" in public_names("2026-06-05T10:00", "false")
    assert client.post(f"/zones/{zone['id']}/retire").status_code == 200
    assert "公开周五夜市" not in public_names("2026-06-05T19:30", "false")


def test_history_rows_cannot_be_rewritten(engine: Engine, client: TestClient,
                                          town: Town) -> None:
    zone_id = post(client, town.zone(box(950, 950, 960, 960))).json()["id"]
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError, match="append-only"), transaction(engine) as session:
        session.execute(text("UPDATE stall_zone_versions SET capacity = 1 WHERE zone_id = :i"),
                        {"i": zone_id})


def test_unknown_zone_is_404(client: TestClient) -> None:
    assert client.get("/zones/999999").status_code == 404
    assert client.post("/zones/999999/approve").status_code == 404
    assert client.get("/zones/999999/versions").status_code == 404


def test_active_at_a_time_and_allowed_here(client: TestClient, town: Town) -> None:
    zone = post(client, town.zone(box(-300, -300, -280, -280), name="周五夜市",
                                  time_slots=FRIDAY_NIGHT)).json()
    assert client.post(f"/zones/{zone['id']}/approve").status_code == 200

    def active(at: str) -> set[int]:
        response = client.get("/zones/active", params={"at": at})
        assert response.status_code == 200
        return {f["id"] for f in response.json()["features"]}

    assert zone["id"] in active("2026-06-05T19:30")  # Friday
    assert zone["id"] in active("2026-06-06T01:30")  # Saturday, across midnight
    assert zone["id"] not in active("2026-06-06T02:30")
    assert zone["id"] not in active("2026-06-01T19:30")  # Monday
    assert zone["id"] in active("2026-06-05T11:30:00+00:00")  # 19:30 in Beijing

    lon, lat = town.wgs84(box(-290, -290, -290, -290).centroid).coords[0]
    here = client.get("/zones/at", params={"lon": lon, "lat": lat, "at": "2026-06-05T20:00"})
    body = here.json()
    assert body["stalls_allowed_now"] is True
    assert [z["id"] for z in body["zones"]] == [zone["id"]]
    closed = client.get("/zones/at", params={"lon": lon, "lat": lat,
                                             "at": "2026-06-04T20:00"}).json()
    assert closed["stalls_allowed_now"] is False and closed["zones"][0]["properties"][
        "open_now"] is False

    # Next to the school gate, on the demonstration street: nothing allowed, and why.
    lon, lat = town.wgs84(box(1460, 0, 1460, 0).centroid).coords[0]
    near_school = client.get("/zones/at", params={"lon": lon, "lat": lat}).json()
    assert near_school["stalls_allowed_now"] is False
    assert [s["kind"] for s in near_school["sensitive_sites_nearby"]] == ["school_gate"]
    assert near_school["sensitive_sites_nearby"][0]["distance_m"] == pytest.approx(40, abs=0.05)
    lon, lat = town.wgs84(box(0, 1500, 0, 1500).centroid).coords[0]
    street = client.get("/zones/at", params={"lon": lon, "lat": lat}).json()
    assert street["on_demonstration_street"] is True
    assert street["streets"][0]["street_class_zh"] == "示范街"


def test_export_geojson_and_geopackage(client: TestClient, town: Town, tmp_path) -> None:
    post(client, town.zone(box(-600, -600, -580, -580), name="导出测试"))
    geojson = client.get("/zones/export", params={"format": "geojson"})
    assert geojson.status_code == 200
    assert geojson.headers["content-type"].startswith("application/geo+json")
    names = [f["properties"]["name"] for f in geojson.json()["features"]]
    assert "导出测试" in names
    gpkg = client.get("/zones/export", params={"format": "gpkg"})
    assert gpkg.status_code == 200 and gpkg.content[:16] == b"SQLite format 3\x00"
    path = tmp_path / "zones.gpkg"
    path.write_bytes(gpkg.content)
    frame = pyogrio.read_dataframe(path)
    assert frame.crs.to_epsg() == 4326
    assert "导出测试" in set(frame["name"]) and len(frame) == len(names)
    assert client.get("/zones/export", params={"format": "shp"}).status_code == 422


def test_check_is_a_dry_run(client: TestClient, engine: Engine, town: Town) -> None:
    before = count(engine, "stall_zones")
    response = client.post("/zones/check", json=town.zone(box(0, 1482, 30, 1488)))
    assert response.status_code == 200
    assert response.json()["passed"] is False
    ok = client.post("/zones/check", json=town.zone(box(-700, -700, -680, -680))).json()
    assert ok["passed"] is True and ok["area_m2"] == pytest.approx(400, abs=0.5)
    assert count(engine, "stall_zones") == before


def test_split_makes_two_drafts_and_retires_the_original(client: TestClient, town: Town,
                                                         engine: Engine) -> None:
    from shapely.geometry import LineString, mapping

    original = post(client, town.zone(box(600, 600, 640, 620), capacity=40)).json()
    cut = mapping(town.wgs84(LineString([(620, 590), (620, 630)])))
    response = client.post(f"/zones/{original['id']}/split", json=cut)
    assert response.status_code == 201, response.json()
    parts = response.json()["features"]
    assert len(parts) == 2
    areas = sorted(town.local(p["geometry"]).area for p in parts)
    assert areas == pytest.approx([400, 400], rel=1e-3)
    assert [p["properties"]["capacity"] for p in parts] == [20, 20]
    assert {p["properties"]["status"] for p in parts} == {"draft"}
    assert client.get(f"/zones/{original['id']}").json()["properties"]["status"] == "retired"
    history = client.get(f"/zones/{original['id']}/versions").json()["features"]
    assert [v["properties"]["action"] for v in history] == ["create", "retire"]


def test_split_line_that_misses_the_zone_changes_nothing(client: TestClient, town: Town,
                                                         engine: Engine) -> None:
    from shapely.geometry import LineString, mapping

    zone = post(client, town.zone(box(700, 600, 720, 620))).json()
    before = count(engine, "stall_zones")
    miss = mapping(town.wgs84(LineString([(760, 590), (760, 630)])))
    response = client.post(f"/zones/{zone['id']}/split", json=miss)
    assert response.status_code == 422
    assert f"zone {zone['id']}" in response.json()["detail"]
    assert count(engine, "stall_zones") == before
    assert client.get(f"/zones/{zone['id']}").json()["properties"]["status"] == "draft"
    point = client.post(f"/zones/{zone['id']}/split", json={"type": "Point",
                                                            "coordinates": [117, 35.9]})
    assert point.status_code == 422 and "'Point'" in point.json()["detail"]
