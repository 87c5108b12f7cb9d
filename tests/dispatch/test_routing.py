"""Single-point routing against a constructed city with known answers (real PostGIS)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch.routing import route_point
from gis.dispatch.routing_settings import RoutingSettings
from gis.geo.coords import wgs84_to_bd09, wgs84_to_gcj02
from gis.platform.errors import CrsMismatchError, InvalidInputError, NotFoundError, OutsideCityError
from gis.platform.settings import CitySettings

# Six 0.001° squares (≈ 89 m × 111 m) near Jinan, numbered west→east, north→south:
#
#   lat 36.662 +------+------+------+
#              |  01  |  02  | B01  |
#   lat 36.661 +------+------+------+
#              |  03  |  04  | B02  |
#   lat 36.660 +------+------+------+
#           117.030 117.031 117.032 117.033
A = "370102001001"
B = "370102001002"
CELLS = {
    f"{A}01": (117.030, 36.661), f"{A}02": (117.031, 36.661),
    f"{A}03": (117.030, 36.660), f"{A}04": (117.031, 36.660),
    f"{B}01": (117.032, 36.661), f"{B}02": (117.032, 36.660),
}
SIZE = 0.001
OLD_OWNER, NEW_OWNER = "张网格员", "李网格员"
LIGHTING_OWNER = "历下区路灯所"
SEWER_OWNER, GAS_OWNER = "历下排水所", "济南港华燃气"
NIGHT_MARKET_OPERATOR = "泉城夜市管理公司"
STREETLIGHT = "3701020118000001"
SEWER_COVER, GAS_COVER = "3701020102000001", "3701020111000001"
CITY = CitySettings(name="测试城")
SETTINGS = RoutingSettings()
GEOD = Geod(ellps="WGS84")
MARCH = datetime(2025, 3, 15, 10, 0)
SEPTEMBER = datetime(2025, 9, 15, 10, 0)


def _square(x: float, y: float, size: float = SIZE) -> str:
    # Rounded so that neighbours share exactly the same vertex coordinates.
    x, y, size = round(x, 6), round(y, 6), round(size, 6)
    x2, y2 = round(x + size, 6), round(y + size, 6)
    return f"POLYGON(({x} {y}, {x2} {y}, {x2} {y2}, {x} {y2}, {x} {y}))"


def build_city(session: Session) -> None:
    """Insert the constructed city (districts to stall zones) into the session's transaction."""
    area = "MULTIPOLYGON(((117.02 36.65, 117.04 36.65, 117.04 36.67, 117.02 36.67, 117.02 36.65)))"
    run = session.execute
    run(text("INSERT INTO districts (code, name, source, geom) VALUES "
             "('370102', '历下区', 'test', ST_GeomFromText(:g, 4326))"), {"g": area})
    run(text("INSERT INTO subdistricts (code, name, district_code, geom) VALUES "
             "('370102001', '测试街道', '370102', ST_GeomFromText(:g, 4326))"), {"g": area})
    for code, name in ((A, "甲社区"), (B, "乙社区")):
        run(text("INSERT INTO communities (code, name, subdistrict_code, geom) VALUES "
                 "(:c, :n, '370102001', ST_GeomFromText(:g, 4326))"),
            {"c": code, "n": name, "g": area})
    for code, (x, y) in CELLS.items():
        run(text("INSERT INTO grid_cells (code, community_code, geom) "
                 "VALUES (:c, :cc, ST_GeomFromText(:g, 4326))"),
            {"c": code, "cc": code[:12], "g": _square(x, y)})
    owners = [
        (f"{A}01", "王网格员", "grid_worker", "13800000001", "2024-01-01", None),
        (f"{A}02", "赵网格员", "grid_worker", "13800000002", "2024-01-01", None),
        # Ownership changed on 1 July 2025.
        (f"{A}04", OLD_OWNER, "grid_worker", "13800000004", "2024-01-01", "2025-07-01"),
        (f"{A}04", NEW_OWNER, "squad", "0531-86000004", "2025-07-01", None),
        (f"{B}01", "钱网格员", "grid_worker", "13800000005", "2024-01-01", None),
        (f"{B}02", "孙网格员", "grid_worker", "13800000006", "2024-01-01", None),
        # A03 has no owner: 属地兜底.
    ]
    for grid, name, kind, phone, start, end in owners:
        run(text("INSERT INTO grid_owners (grid_code, owner_name, owner_kind, phone, valid_from, "
                 "valid_to) VALUES (:g, :n, :k, :p, :f, :t)"),
            {"g": grid, "n": name, "k": kind, "p": phone, "f": start, "t": end})
    stations = [("S-NEAR", "甲社区城管工作站", 117.0305, 36.6625),
                ("S-FAR", "远处工作站", 117.0500, 36.6700)]
    for code, name, x, y in stations:
        run(text("INSERT INTO stations (code, name, address, phone, staff, opening_hours, "
                 "geom) VALUES (:c, :n, '测试路1号', '0531-86000000', 3, '08:00-18:00', "
                 "ST_SetSRID(ST_MakePoint(:x, :y), 4326))"), {"c": code, "n": name, "x": x, "y": y})
    run(text("INSERT INTO streetlights (code, owner, maintainer, geom) VALUES "
             "(:c, :o, '养护公司', ST_SetSRID(ST_MakePoint(117.03153, 36.66048), 4326))"),
        {"c": STREETLIGHT, "o": LIGHTING_OWNER})
    for code, owner, x, y in ((SEWER_COVER, SEWER_OWNER, 117.03155, 36.66052),
                              (GAS_COVER, GAS_OWNER, 117.03146, 36.66049)):
        run(text("INSERT INTO manhole_covers (code, owner, maintainer, geom) VALUES "
                 "(:c, :o, '养护公司', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
            {"c": code, "o": owner, "x": x, "y": y})
    # A Friday night market across midnight, April to October, over the middle of A02.
    night = [{"days": [5], "start": "18:00", "end": "02:00"}]
    for status, operator in (("approved", NIGHT_MARKET_OPERATOR), ("draft", "草案运营方")):
        run(text("INSERT INTO stall_zones (name, zone_type, district_code, time_slots, seasons, "
                 "capacity, operator, status, geom) VALUES (:n, 'night_market', '370102', "
                 "CAST(:s AS jsonb), CAST(:z AS jsonb), 100, :o, :st, ST_GeomFromText(:g, 4326))"),
            {"n": f"{status}夜市", "s": json.dumps(night),
             "z": json.dumps([{"from": "04-01", "to": "10-31"}]), "o": operator, "st": status,
             "g": _square(117.0312, 36.6612, 0.0006)})
    session.flush()


@pytest.fixture
def city(session: Session) -> Session:
    build_city(session)
    return session


def route(session: Session, x: float, y: float, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("at", SEPTEMBER)
    return route_point(session, x=x, y=y, settings=SETTINGS, city=CITY, **kwargs)


def test_centre_routes_to_its_grid_with_owner_station_and_distances(city: Session) -> None:
    r = route(city, 117.0315, 36.6605)
    assert (r.grid_code, r.community_name, r.snapped) == (f"{A}04", "甲社区", False)
    assert r.owner.name == NEW_OWNER and r.owner.phone == "0531-86000004"
    assert r.station is not None and r.station.code == "S-NEAR"
    expected = GEOD.inv(117.0315, 36.6605, 117.0305, 36.6625)[2]
    assert r.station.distance_m == pytest.approx(expected, abs=0.5)
    # Half a cell east-west is the nearest edge: 0.0005° of longitude at 36.66°N.
    half = GEOD.inv(117.0315, 36.6605, 117.0310, 36.6605)[2]
    assert r.other_grid_distance_m == pytest.approx(half, abs=0.5)
    assert not r.near_boundary
    assert r.responsible_unit == NEW_OWNER  # default event rule: the grid owner (属地)
    assert (r.raw_x, r.raw_y, r.raw_crs) == (117.0315, 36.6605, "wgs84")


def test_point_on_shared_edge_goes_to_smallest_code_and_is_near_boundary(city: Session) -> None:
    r = route(city, 117.031, 36.6605)  # edge between A03 and A04
    assert r.grid_code == f"{A}03"
    assert r.near_boundary and r.other_grid_distance_m == 0
    assert r.nearest_other_grid == f"{A}04"


def test_point_on_vertex_of_four_grids_goes_to_smallest_code(city: Session) -> None:
    assert route(city, 117.031, 36.661).grid_code == f"{A}01"
    assert route(city, 117.032, 36.661).grid_code == f"{A}02"  # A02, A04, B01, B02 meet


def test_point_just_outside_is_snapped_and_flagged(city: Session) -> None:
    y = 36.660 - 20 / 111_000  # ~20 m south of A03
    r = route(city, 117.0305, y)
    assert r.grid_code == f"{A}03" and r.snapped
    assert r.snap_distance_m == pytest.approx(GEOD.inv(117.0305, y, 117.0305, 36.660)[2], abs=0.5)


def test_point_far_outside_is_refused_naming_point_and_city(city: Session) -> None:
    with pytest.raises(OutsideCityError, match=r"117\.0305.*36\.65.*测试城"):
        route(city, 117.0305, 36.650)


def test_snap_distance_is_configurable(city: Session) -> None:
    y = 36.660 - 20 / 111_000
    with pytest.raises(OutsideCityError):
        route_point(city, x=117.0305, y=y, at=SEPTEMBER, city=CITY,
                    settings=RoutingSettings(max_snap_m=10))


@pytest.mark.parametrize("crs", ["gcj02", "bd09", "cgcs2000"])
def test_same_point_in_every_crs_routes_to_the_same_grid(city: Session, crs: str) -> None:
    lon, lat = 117.0315, 36.6615  # centre of A02
    convert = {"gcj02": wgs84_to_gcj02, "bd09": wgs84_to_bd09,
               "cgcs2000": lambda a, b: (a, b)}[crs]
    x, y = convert(lon, lat)
    r = route(city, x, y, crs=crs)
    assert r.grid_code == f"{A}02"
    assert (r.lon, r.lat) == (pytest.approx(lon, abs=1e-7), pytest.approx(lat, abs=1e-7))
    assert (r.raw_x, r.raw_y, r.raw_crs) == (x, y, crs)


def test_gcj02_pin_read_as_wgs84_lands_elsewhere(city: Session) -> None:
    # Guards the previous test: the shift is hundreds of metres, so ignoring it must fail.
    x, y = wgs84_to_gcj02(117.0315, 36.6615)
    with pytest.raises(OutsideCityError):
        route(city, x, y, crs="wgs84")


def test_unknown_crs_and_bad_numbers_are_named(city: Session) -> None:
    with pytest.raises(CrsMismatchError, match="mars"):
        route(city, 117.03, 36.66, crs="mars")
    with pytest.raises(InvalidInputError, match="nan"):
        route(city, float("nan"), 36.66)
    with pytest.raises(InvalidInputError, match="'0999x'"):
        route(city, 117.0315, 36.6605, category_code="0999x")


def test_ownership_change_mid_year_judges_each_complaint_by_its_day(city: Session) -> None:
    assert route(city, 117.0315, 36.6605, at=MARCH).owner.name == OLD_OWNER
    assert route(city, 117.0315, 36.6605, at=SEPTEMBER).owner.name == NEW_OWNER
    # The change is at local midnight on 1 July: 23:30 UTC on 30 June is already July here.
    late_june_utc = datetime(2025, 6, 30, 23, 30, tzinfo=UTC)
    assert route(city, 117.0315, 36.6605, at=late_june_utc).owner.name == NEW_OWNER
    assert route(city, 117.0315, 36.6605,
                 at=late_june_utc - timedelta(hours=8)).owner.name == OLD_OWNER


def test_grid_without_owner_falls_to_local_government(city: Session) -> None:
    r = route(city, 117.0305, 36.6605)  # A03
    assert r.owner.fallback and r.owner.kind == "local_government"
    assert r.owner.name == "测试街道办事处"


def test_named_component_routes_by_its_owner(city: Session) -> None:
    r = route(city, 117.0315, 36.6605, category_type="component", component_code=GAS_COVER)
    assert r.component is not None and r.component.how == "named"
    assert r.responsible_unit == GAS_OWNER
    assert r.responsibility_rule_zh.endswith(f"由部件 {r.component.code} 的权属单位负责")
    with pytest.raises(NotFoundError, match="3701020111999999"):
        route(city, 117.0315, 36.6605, component_code="3701020111999999")


@pytest.mark.parametrize(("category", "owner", "code"), [
    ("0102", SEWER_OWNER, SEWER_COVER), ("0111", GAS_OWNER, GAS_COVER),
    ("0118", LIGHTING_OWNER, STREETLIGHT)])
def test_nearby_component_of_the_category_is_linked(city: Session, category: str, owner: str,
                                                    code: str) -> None:
    # All three components lie within 6 m of the point: the cover type decides the owner.
    r = route(city, 117.0315, 36.6605, category_type="component", category_code=category)
    assert r.component is not None and r.component.code == code and r.component.how == "nearby"
    assert r.component.distance_m < SETTINGS.component_link_m
    assert r.responsible_unit == owner


def test_component_too_far_is_not_linked_and_class_owner_decides(city: Session) -> None:
    r = route(city, 117.0311, 36.6601, category_type="component", category_code="0102")
    assert r.component is None
    assert r.responsible_unit == "排水管理处"  # component_classes.default_owner of 0102
    r = route(city, 117.0311, 36.6601, category_type="component", category_code="0118")
    assert r.responsible_unit == "济南市城市照明服务中心"


def test_event_categories_follow_the_rules_table(city: Session) -> None:
    assert route(city, 117.0315, 36.6605, category_code="0505").responsible_unit == "城管执法中队"
    sanitation = route(city, 117.0315, 36.6605, category_code="0102")
    assert sanitation.responsible_unit == "环卫所"
    assert sanitation.responsibility_rule_zh == "规则 01：此类案件固定由环卫所负责"
    assert route(city, 117.0315, 36.6605, category_code="0201").responsible_unit == NEW_OWNER
    city.execute(text("UPDATE responsibility_rules SET responsible_unit = '新中队' "
                      "WHERE category_type = 'event' AND code_prefix = '05'"))
    assert route(city, 117.0315, 36.6605, category_code="0505").responsible_unit == "新中队"


def test_night_market_slot_across_midnight_names_its_operator(city: Session) -> None:
    inside = (117.0315, 36.6615)
    friday_night = datetime(2025, 9, 12, 20, 0)  # 2025-09-12 is a Friday
    saturday_1am = datetime(2025, 9, 13, 1, 0)
    zone = route(city, *inside, at=saturday_1am).stall_zone
    assert zone is not None and zone.operator == NIGHT_MARKET_OPERATOR
    assert route(city, *inside, at=friday_night).stall_zone is not None
    assert route(city, *inside, at=datetime(2025, 9, 13, 3, 0)).stall_zone is None
    assert route(city, *inside, at=datetime(2025, 9, 13, 20, 0)).stall_zone is None  # Saturday
    assert route(city, *inside, at=datetime(2025, 1, 10, 20, 0)).stall_zone is None  # season
    assert route(city, 117.0305, 36.6615, at=saturday_1am).stall_zone is None  # outside zone
