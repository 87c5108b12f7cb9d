"""Public read-only API over a constructed city in real PostGIS: whitelists, open now, nearest."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from pyproj import Geod
from sqlalchemy import text

from api.deps import get_public_session, get_session
from api.main import create_app
from gis.geo.coords import wgs84_to_gcj02
from gis.public.convenience_map import facility_open, schedule_zh
from tests.dispatch.test_routing import NIGHT_MARKET_OPERATOR, _square, build_city

GEOD = Geod(ellps="WGS84")
HERE = (117.0305, 36.6605)  # inside grid A03 of the constructed city
# Written out by hand: a new field in a public model must be added here on purpose.
FEATURE_KEYS = {"type", "id", "geometry", "properties"}
FACILITY_KEYS = {"id", "name", "kind", "kind_zh", "address", "opening_hours", "phone",
                 "open_now", "lon", "lat"}
STATION_KEYS = {"id", "name", "address", "phone", "opening_hours", "lon", "lat"}
ZONE_KEYS = {"id", "name", "zone_type", "zone_type_zh", "schedule_zh", "time_slots", "seasons",
             "capacity", "operator", "open_now", "lon", "lat"}
NEAREST_KEYS = {"kind", "kind_zh", "origin", "origin_display", "at", "detour_factor", "places"}
PLACE_KEYS = {"kind", "id", "name", "address", "phone", "opening_hours", "open_now", "lon",
              "lat", "display", "distance_m", "walking_distance_m", "walking_minutes"}
# Values that live only in internal columns or rows of the constructed city.
SECRETS = ["13800000001", "王网格员", "草案运营方", "draft夜市", "retired早市", "staff",
           "simulated", "status", "owner", "养护公司", "community_code"]

FRIDAY_NIGHT = "2025-09-19T23:30"  # a Friday in the night market's season (04-01..10-31)
FRIDAY_MORNING = "2025-09-19T10:00"
SATURDAY_EARLY = "2025-09-20T01:30"  # still Friday's night, past midnight
NOVEMBER_FRIDAY_NIGHT = "2025-11-14T23:30"  # a Friday outside the season


def _zone(session, name: str, zone_type: str, slots, seasons, status: str, ring) -> None:
    session.execute(text(
        "INSERT INTO stall_zones (name, zone_type, district_code, time_slots, seasons, capacity, "
        "operator, status, geom) VALUES (:n, :t, '370102', CAST(:s AS jsonb), CAST(:z AS jsonb), "
        "20, '某街道办', :st, ST_GeomFromText(:g, 4326))"),
        {"n": name, "t": zone_type, "s": json.dumps(slots), "z": json.dumps(seasons),
         "st": status, "g": ring})


@pytest.fixture
def client(test_settings, session):
    # Other modules commit approved zones to this database (their test towns); this test
    # city's expectations are about its own zones, so the others are retired here, inside
    # the transaction that is rolled back.
    session.execute(text("UPDATE stall_zones SET status = 'retired' WHERE status <> 'retired'"))
    build_city(session)
    all_week = [1, 2, 3, 4, 5, 6, 7]
    _zone(session, "瓜果摊", "seasonal_produce",
          [{"days": all_week, "start": "06:00", "end": "20:00"}],
          [{"from": "06-01", "to": "09-29"}], "approved", _square(117.0302, 36.6602, 0.0003))
    _zone(session, "retired早市", "morning_market",
          [{"days": all_week, "start": "05:00", "end": "08:00"}], [], "retired",
          _square(117.0322, 36.6602, 0.0003))
    facilities = [("菜市场", "farmers_market", "06:00-20:00", "0531-86001111", 117.0306, 36.6606),
                  ("公厕甲", "public_toilet", "24小时", None, 117.0301, 36.6601),
                  ("公厕乙", "public_toilet", "05:30-23:00", None, 117.0330, 36.6615),
                  ("停车场", "parking", "节假日另行通知", "0531-86002222", 117.0310, 36.6610)]
    for name, kind, hours, phone, x, y in facilities:
        session.execute(text(
            "INSERT INTO facilities (name, kind, address, opening_hours, phone, geom) VALUES "
            "(:n, :k, '测试路2号', :h, :p, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
            {"n": name, "k": kind, "h": hours, "p": phone, "x": x, "y": y})
    session.flush()
    app = create_app(test_settings)
    # The constructed city lives in this test's transaction: both pools read it.
    app.dependency_overrides[get_session] = lambda: session
    app.dependency_overrides[get_public_session] = lambda: session
    with TestClient(app) as test_client:
        yield test_client


def _get(client, path, **params):
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    for secret in SECRETS:
        assert secret not in response.text, f"{path} leaks {secret!r}"
    return response.json()


def test_facilities_carry_only_public_fields(client):
    body = _get(client, "/public/facilities", at=FRIDAY_MORNING)
    assert body["type"] == "FeatureCollection" and body["at"] == FRIDAY_MORNING
    assert len(body["features"]) == 4
    for feature in body["features"]:
        assert set(feature) == FEATURE_KEYS
        assert set(feature["properties"]) == FACILITY_KEYS
        assert feature["geometry"]["type"] == "Point"


def test_facilities_by_kind_and_open_now(client):
    toilets = _get(client, "/public/facilities", kind="public_toilet", at=FRIDAY_NIGHT)
    assert {f["properties"]["name"] for f in toilets["features"]} == {"公厕甲", "公厕乙"}
    night = _get(client, "/public/facilities", open_now="true", at=FRIDAY_NIGHT)
    names = {f["properties"]["name"]: f["properties"]["open_now"] for f in night["features"]}
    # The market closed at 20:00 and toilet 乙 at 23:00; free-text hours stay (unknown).
    assert names == {"公厕甲": True, "停车场": None}
    morning = _get(client, "/public/facilities", open_now="true", at=FRIDAY_MORNING)
    assert {f["properties"]["name"] for f in morning["features"]} == {
        "菜市场", "公厕甲", "公厕乙", "停车场"}


def test_stations_have_phones_and_nothing_internal(client):
    body = _get(client, "/public/stations")
    assert {f["properties"]["name"] for f in body["features"]} == {"甲社区城管工作站", "远处工作站"}
    for feature in body["features"]:
        assert set(feature) == FEATURE_KEYS
        assert set(feature["properties"]) == STATION_KEYS
        assert feature["properties"]["phone"] == "0531-86000000"


@pytest.mark.parametrize(("at", "open_names"), [
    (FRIDAY_NIGHT, {"approved夜市"}),
    (SATURDAY_EARLY, {"approved夜市"}),
    (FRIDAY_MORNING, {"瓜果摊"}),
    (NOVEMBER_FRIDAY_NIGHT, set()),  # night market out of season
    ("2025-11-14T10:00", set()),  # 瓜果摊 out of its season (06-01..09-29)
    ("2025-09-21T23:30", set()),  # a Sunday: the night market opens on Fridays only
])
def test_stall_zones_open_now_at_fixed_times(client, at, open_names):
    body = _get(client, "/public/stall-zones", at=at)
    assert {f["properties"]["name"] for f in body["features"]} == open_names
    everything = _get(client, "/public/stall-zones", at=at, open_now="false")
    # Approved zones only: the draft and the retired zone never appear.
    assert {f["properties"]["name"] for f in everything["features"]} == {"approved夜市", "瓜果摊"}
    for feature in everything["features"]:
        assert set(feature) == FEATURE_KEYS
        assert set(feature["properties"]) == ZONE_KEYS
        assert feature["geometry"]["type"] == "Polygon"
        assert feature["properties"]["open_now"] == (feature["properties"]["name"] in open_names)


def test_aware_time_is_converted_to_city_time(client):
    # 15:30 UTC is 23:30 in Jinan.
    body = _get(client, "/public/stall-zones", at="2025-09-19T15:30:00Z")
    assert {f["properties"]["name"] for f in body["features"]} == {"approved夜市"}
    assert body["at"] == FRIDAY_NIGHT


def test_night_market_properties_are_public_ones(client):
    body = _get(client, "/public/stall-zones", at=FRIDAY_NIGHT, zone_type="night_market")
    (zone,) = body["features"]
    assert zone["properties"]["operator"] == NIGHT_MARKET_OPERATOR
    assert zone["properties"]["schedule_zh"] == "周五 18:00–02:00（次日）；4月1日至10月31日"


def test_nearest_toilets_with_walking_distance(client):
    body = _get(client, "/public/nearest", lon=HERE[0], lat=HERE[1], kind="public_toilet",
                at=FRIDAY_MORNING)
    assert set(body) == NEAREST_KEYS
    assert [p["name"] for p in body["places"]] == ["公厕甲", "公厕乙"]
    first = body["places"][0]
    assert set(first) == PLACE_KEYS
    _, _, metres = GEOD.inv(HERE[0], HERE[1], 117.0301, 36.6601)
    assert first["distance_m"] == pytest.approx(metres, abs=0.2)
    assert first["walking_distance_m"] == pytest.approx(metres * 1.3, abs=1)
    assert body["detour_factor"] == 1.3
    assert body["places"][0]["distance_m"] < body["places"][1]["distance_m"]


def test_nearest_open_now_skips_closed_facilities(client):
    body = _get(client, "/public/nearest", lon=117.0330, lat=36.6615, kind="public_toilet",
                at=FRIDAY_NIGHT)
    assert [p["name"] for p in body["places"]] == ["公厕乙", "公厕甲"]
    assert body["places"][0]["open_now"] is False  # closed at 23:00
    body = _get(client, "/public/nearest", lon=117.0330, lat=36.6615, kind="public_toilet",
                at=FRIDAY_NIGHT, open_now="true")
    assert [p["name"] for p in body["places"]] == ["公厕甲"]


def test_nearest_station_and_limit(client):
    body = _get(client, "/public/nearest", lon=HERE[0], lat=HERE[1], kind="station", limit=1)
    assert [p["name"] for p in body["places"]] == ["甲社区城管工作站"]
    assert body["places"][0]["phone"] == "0531-86000000"


def test_nearest_stall_zone_only_when_open(client):
    night = _get(client, "/public/nearest", lon=117.0315, lat=36.6615, kind="stall_zone",
                 at=FRIDAY_NIGHT)
    assert [p["name"] for p in night["places"]] == ["approved夜市"]
    assert night["places"][0]["distance_m"] == 0  # the point lies inside the zone
    morning = _get(client, "/public/nearest", lon=117.0315, lat=36.6615, kind="stall_zone",
                   at=FRIDAY_MORNING)
    assert [p["name"] for p in morning["places"]] == ["瓜果摊"]


def test_nearest_from_a_gcj02_point_and_for_a_gcj02_map(client):
    gx, gy = wgs84_to_gcj02(*HERE)
    body = _get(client, "/public/nearest", lon=gx, lat=gy, crs="gcj02", kind="public_toilet",
                display_crs="gcj02")
    assert body["origin"] == pytest.approx(list(HERE), abs=1e-7)
    assert body["origin_display"] == pytest.approx([gx, gy], abs=1e-6)
    place = body["places"][0]
    assert place["name"] == "公厕甲"
    assert place["display"] == pytest.approx(list(wgs84_to_gcj02(117.0301, 36.6601)), abs=1e-6)


@pytest.mark.parametrize(("params", "named"), [
    ({"lon": 200, "lat": 36.66, "kind": "station"}, "200"),
    ({"lon": 117.03, "lat": 95, "kind": "station"}, "95"),
    ({"lon": 100.0, "lat": 30.0, "kind": "station"}, "outside"),
    ({"lon": "abc", "lat": 36.66, "kind": "station"}, "abc"),
    ({"lon": "nan", "lat": 36.66, "kind": "station"}, "nan"),
    ({"lon": 117.03, "lat": 36.66, "kind": "zoo"}, "zoo"),
    ({"lon": 117.03, "lat": 36.66, "kind": "station", "crs": "epsg:3857"}, "epsg:3857"),
    ({"lon": 117.03, "lat": 36.66, "kind": "station", "limit": 0}, "0"),
])
def test_nearest_bad_input_is_4xx_naming_the_value(client, params, named):
    response = client.get("/public/nearest", params=params)
    assert 400 <= response.status_code < 500, response.text
    assert named in response.text


def test_unknown_kind_and_zone_type_are_named(client):
    response = client.get("/public/facilities", params={"kind": "zoo"})
    assert response.status_code == 422 and "'zoo'" in response.json()["detail"]
    response = client.get("/public/stall-zones", params={"zone_type": "circus"})
    assert response.status_code == 422 and "'circus'" in response.json()["detail"]


def test_kinds_list(client):
    body = _get(client, "/public/kinds")
    assert [k["id"] for k in body][-2:] == ["station", "stall_zone"]
    assert {k["name_zh"] for k in body} >= {"农贸市场", "公厕", "充电桩", "停车场", "便民服务点"}


def test_public_routes_are_read_only(client):
    for path in ("/public/facilities", "/public/stations", "/public/stall-zones",
                 "/public/nearest"):
        assert client.post(path, json={}).status_code == 405
        assert client.delete(path).status_code == 405


def test_facility_hours_and_schedule_text():
    from datetime import datetime

    late = datetime(2025, 9, 19, 23, 30)
    assert facility_open("24小时", late) is True
    assert facility_open("06:00-20:00", late) is False
    assert facility_open("18:00-02:00", late) is True
    assert facility_open("18:00-02:00", datetime(2025, 9, 20, 3, 0)) is False
    assert facility_open("08:00-24:00", late) is True
    assert facility_open("看店主心情", late) is None
    assert schedule_zh([{"days": [1, 2, 3, 4, 5, 6, 7], "start": "05:00", "end": "08:00"}],
                       [{"from": "06-01", "to": "09-29"}]) == "每天 05:00–08:00；6月1日至9月29日"
