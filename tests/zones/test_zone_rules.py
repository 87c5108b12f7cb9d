"""Zone rules: the rules file, and every PostGIS check on a constructed town with known answers.

The town is drawn in metres in EPSG:4548 (the city's metric CRS) so every distance in a test
is exact, then stored in EPSG:4326 like real data. It lies south of Jinan, where the demo city
has nothing that could interfere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, Point, Polygon, box, mapping, shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.platform.errors import InvalidInputError, OutsideCityError
from gis.platform.settings import CitySettings
from gis.zones.checks import ZoneCheck
from gis.zones.errors import InvalidZoneGeometryError
from gis.zones.rules import DEFAULT_RULES_FILE, ZoneRules, ZoneSettings, load_rules
from gis.zones.service import check_feature

TEST_BBOX = (116.9, 35.85, 117.1, 36.1)
TO_WGS84 = Transformer.from_crs(4548, 4326, always_xy=True)
TO_METRIC = Transformer.from_crs(4326, 4548, always_xy=True)
NIGHTLY = [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "18:00", "end": "22:30"}]


def test_city(base: CitySettings | None = None) -> CitySettings:
    city = (base or CitySettings()).model_copy(deep=True)
    city.bbox = TEST_BBOX
    return city


test_city.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@dataclass(frozen=True)
class Town:
    """A test town: origin in EPSG:4548 and district code prefix (4 digits)."""

    x0: float
    y0: float
    prefix: str

    def wgs84(self, geom):
        """Local metres (origin at the town centre) to EPSG:4326."""
        return shapely.transform(geom, lambda x, y: TO_WGS84.transform(x + self.x0, y + self.y0),
                                 interleaved=False)

    def zone(self, geom, **props: Any) -> dict[str, Any]:
        """A zone Feature from a local-metre polygon."""
        props = {"name": "测试摊群点", "zone_type": "night_market", "time_slots": NIGHTLY,
                 "capacity": 10, "operator": "测试街道办", **props}
        return {"type": "Feature", "properties": props,
                "geometry": mapping(self.wgs84(geom))}

    @property
    def district(self) -> str:
        return f"{self.prefix}01"

    def local(self, geojson: dict[str, Any]):
        """A GeoJSON geometry (EPSG:4326) back in local metres."""
        def back(x, y):
            mx, my = TO_METRIC.transform(x, y)
            return mx - self.x0, my - self.y0

        return shapely.transform(shape(geojson), back, interleaved=False)


def build_town(session: Session, *, lon: float, lat: float, prefix: str) -> Town:
    """Districts, a community, 4 grid cells, 3 streets, 4 sites and a fire lane at (lon, lat).

    Layout in local metres: district A = [-2000, 2000]², district B east of it; grid cells are
    the four 1 km quadrants around the origin; 示范街 along y=1500 (20 m wide), 规范街 along
    y=-1500 (8 m), 商业街 along x=-1800 (6 m); school gate (1500, 0), kindergarten (1500, 500),
    hospital (1500, -500), metro exit (-1500, 0); fire lane x=-500 from y=500 to 900 (4 m).
    """
    x0, y0 = TO_METRIC.transform(lon, lat)
    town = Town(x0, y0, prefix)

    def wkt(geom) -> str:
        return town.wgs84(geom).wkt

    a, b = f"{prefix}01", f"{prefix}02"
    for code, name, poly in ((a, "测试甲区", box(-2000, -2000, 2000, 2000)),
                             (b, "测试乙区", box(2000, -2000, 4000, 2000))):
        session.execute(text("INSERT INTO districts (code, name, source, simulated, geom) VALUES "
                             "(:c, :n, 'test', true, ST_Multi(ST_GeomFromText(:g, 4326)))"),
                        {"c": code, "n": name, "g": wkt(poly)})
    sub, community = f"{a}001", f"{a}001001"
    session.execute(text("INSERT INTO subdistricts (code, name, district_code, geom) VALUES "
                         "(:c, '测试街道', :d, ST_Multi(ST_GeomFromText(:g, 4326)))"),
                    {"c": sub, "d": a, "g": wkt(box(-2000, -2000, 2000, 2000))})
    session.execute(text("INSERT INTO communities (code, name, subdistrict_code, geom) VALUES "
                         "(:c, '测试社区', :s, ST_Multi(ST_GeomFromText(:g, 4326)))"),
                    {"c": community, "s": sub, "g": wkt(box(-2000, -2000, 2000, 2000))})
    cells = [box(-1000, 0, 0, 1000), box(0, 0, 1000, 1000), box(-1000, -1000, 0, 0),
             box(0, -1000, 1000, 0)]
    for i, cell in enumerate(cells, start=1):
        session.execute(text("INSERT INTO grid_cells (code, community_code, geom) VALUES "
                             "(:c, :m, ST_GeomFromText(:g, 4326))"),
                        {"c": f"{community}{i:02d}", "m": community, "g": wkt(cell)})
    roads = [("示范路", "demonstration", 20.0, LineString([(-1500, 1500), (1500, 1500)])),
             ("规范路", "managed", 8.0, LineString([(-1500, -1500), (1500, -1500)])),
             ("商业路", "commercial", 6.0, LineString([(-1800, -1000), (-1800, 1000)]))]
    for name, cls, width, line in roads:
        session.execute(text("INSERT INTO roads (name, street_class, width_m, geom) VALUES "
                             "(:n, :c, :w, ST_GeomFromText(:g, 4326))"),
                        {"n": f"{prefix}{name}", "c": cls, "w": width, "g": wkt(line)})
    sites = [("实验小学南门", "school_gate", None, Point(1500, 0)),
             ("阳光幼儿园", "kindergarten", None, Point(1500, 500)),
             ("人民医院", "hospital", None, Point(1500, -500)),
             ("地铁A口", "metro_exit", None, Point(-1500, 0)),
             ("小区消防通道", "fire_lane", 4.0, LineString([(-500, 500), (-500, 900)]))]
    for name, kind, clear, geom in sites:
        session.execute(text("INSERT INTO sensitive_sites (name, kind, clear_width_m, geom) "
                             "VALUES (:n, :k, :w, ST_GeomFromText(:g, 4326))"),
                        {"n": name, "k": kind, "w": clear, "g": wkt(geom)})
    return town


@pytest.fixture
def town(session: Session) -> Town:
    return build_town(session, lon=117.0, lat=36.0, prefix="9999")


@pytest.fixture(scope="module")
def rules() -> ZoneRules:
    return load_rules(DEFAULT_RULES_FILE)


@pytest.fixture(scope="module")
def city() -> CitySettings:
    return test_city()


def run(session: Session, town: Town, geom: Polygon, rules: ZoneRules, city: CitySettings,
        **props: Any) -> ZoneCheck:
    return check_feature(session, feature=town.zone(geom, **props), rules=rules, city=city)[2]


def only(result: ZoneCheck, rule: str):
    found = [v for v in result.violations if v.rule == rule]
    others = [v.rule for v in result.violations if v.rule != rule]
    assert len(found) == 1 and not others, [v.rule for v in result.violations]
    return found[0]


# ---- rules file ---------------------------------------------------------------------------------

def test_default_rules_match_domain_brief(rules: ZoneRules) -> None:
    assert rules == ZoneRules()  # the shipped file says what the code defaults say
    assert rules.sensitive_distance_m.school_gate == 100
    assert rules.sensitive_distance_m.metro_exit == 50
    assert rules.pedestrian_clearance_m.managed == 2.0
    assert rules.pedestrian_clearance_m.commercial == 1.5
    assert rules.capacity.gross_m2 == 5.0
    assert rules.fire_lane.clear_width_m == 4.0


def test_city_file_overrides_only_what_it_says(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "nanshan.toml"
    path.write_text("[sensitive_distance_m]\nschool_gate = 200\n", encoding="utf-8")
    monkeypatch.setenv("CITYGRID_ZONES_RULES_FILE", str(path))
    assert ZoneSettings().rules_file == path
    rules = load_rules()
    assert rules.sensitive_distance_m.school_gate == 200
    assert rules.sensitive_distance_m.hospital == 100  # default kept


@pytest.mark.parametrize("content,needle", [
    ("[capacity]\nstall_m2 = -1\n", "capacity.stall_m2"),
    ("[sensitive_distance_m]\nschool = 100\n", "sensitive_distance_m.school"),
    ("timezone = 'Mars/Olympus'\n", "Mars/Olympus"),
    ("[capacity\n", "not valid TOML"),
])
def test_bad_rules_file_is_refused_naming_the_key(tmp_path: Path, content: str,
                                                  needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=needle.replace(".", r"\.")):
        load_rules(path)


def test_missing_rules_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"nowhere\.toml"):
        load_rules(tmp_path / "nowhere.toml")


# ---- each rule: broken → refused with its id and the offending part; just passing → accepted ---

def test_clean_zone_passes_and_is_assigned_to_the_grids_it_touches(session, town, rules,
                                                                  city) -> None:
    result = run(session, town, box(-20, 100, 20, 120), rules, city)  # straddles x = 0
    assert result.passed, [v.to_feature() for v in result.violations]
    assert result.district_code == town.district
    assert [code[-2:] for code, _ in result.grids] == ["01", "02"]
    assert sum(m2 for _, m2 in result.grids) == pytest.approx(800, abs=0.5)
    assert result.area_m2 == pytest.approx(800, abs=0.5)


def test_demonstration_street_and_its_buffer(session, town, rules, city) -> None:
    # Street edge at y = 1490 (20 m wide); 10 m buffer: nothing above y = 1480 is allowed.
    bad = only(run(session, town, box(0, 1482, 30, 1488), rules, city), "demonstration_street")
    assert bad.details["distance_m"] == pytest.approx(2, abs=0.01)
    part = town.local(bad.geometry)
    assert part.area == pytest.approx(30 * 6, rel=1e-3)  # the whole zone is inside the buffer
    near = only(run(session, town, box(0, 1460, 30, 1485), rules, city), "demonstration_street")
    assert town.local(near.geometry).bounds[1] == pytest.approx(1480, abs=0.01)
    assert "示范街" in near.message_zh and "demonstration street" in near.message_en
    assert run(session, town, box(0, 1450, 30, 1479.5), rules, city).passed


@pytest.mark.parametrize("kind,x,y,limit", [
    ("school_gate", 1500, 0, 100), ("kindergarten", 1500, 500, 100),
    ("hospital", 1500, -500, 100), ("metro_exit", -1500, 0, 50),
])
def test_distance_from_sensitive_sites(session, town, rules, city, kind, x, y, limit) -> None:
    side = 1 if x < 0 else -1  # put the zone on the town-centre side of the site
    edge = x + side * (limit - 5)
    x1, x2 = sorted((edge, edge + side * 20))
    bad = only(run(session, town, box(x1, y - 10, x2, y + 10), rules, city),
               f"sensitive_site.{kind}")
    assert bad.details["distance_m"] == pytest.approx(limit - 5, abs=0.01)
    assert bad.details["limit_m"] == limit
    part = town.local(bad.geometry)
    assert part.area > 0 and part.distance(Point(x, y)) == pytest.approx(limit - 5, abs=0.01)
    assert part.area < 20 * 20  # only the part inside the circle
    edge = x + side * (limit + 0.5)
    x1, x2 = sorted((edge, edge + side * 20))
    assert run(session, town, box(x1, y - 10, x2, y + 10), rules, city).passed


def test_fire_lane_keeps_its_clear_width(session, town, rules, city) -> None:
    # Lane along x = -500 with 4 m clear: nothing closer than 2 m to its centreline.
    bad = only(run(session, town, box(-498.5, 600, -480, 620), rules, city), "fire_lane")
    assert town.local(bad.geometry).bounds[2] == pytest.approx(-498, abs=0.01)
    assert "消防通道" in bad.message_zh
    assert run(session, town, box(-497.9, 600, -480, 620), rules, city).passed


def test_pedestrian_clearance_on_managed_street(session, town, rules, city) -> None:
    # 规范路: 8 m wide along y = -1500, edges y = -1504 / -1496; 2 m must stay free.
    bad = only(run(session, town, box(0, -1520, 20, -1497.5), rules, city),
               "pedestrian_clearance")
    assert bad.details["clearance_m"] == pytest.approx(1.5, abs=0.01)
    assert bad.details["limit_m"] == 2.0
    part = town.local(bad.geometry)  # the intrusion into the street, not the whole zone
    assert part.bounds[1] == pytest.approx(-1504, abs=0.01)
    assert part.area == pytest.approx(20 * 6.5, rel=1e-3)
    assert run(session, town, box(0, -1520, 20, -1498.05), rules, city).passed


def test_pedestrian_clearance_across_the_middle_uses_the_wider_gap(session, town, rules,
                                                                   city) -> None:
    # A 3 m strip in the middle of 8 m leaves 2.5 m on one side and 2.5 m on the other.
    assert run(session, town, box(0, -1501.5, 20, -1498.5), rules, city).passed
    # 4.5 m in the middle leaves 1.75 m on each side: refused.
    bad = only(run(session, town, box(0, -1502.25, 20, -1497.75), rules, city),
               "pedestrian_clearance")
    assert bad.details["clearance_m"] == pytest.approx(1.75, abs=0.01)


def test_pedestrian_clearance_on_commercial_street_is_1_5_m(session, town, rules, city) -> None:
    # 商业路: 6 m wide along x = -1800, edges x = -1803 / -1797.
    bad = only(run(session, town, box(-1803, 0, -1798.4, 20), rules, city),
               "pedestrian_clearance")
    assert bad.details["clearance_m"] == pytest.approx(1.4, abs=0.01)
    assert run(session, town, box(-1803, 0, -1798.55, 20), rules, city).passed


def test_capacity_must_fit_the_area(session, town, rules, city) -> None:
    zone = box(200, 200, 210, 210)  # 100 m² → 20 stalls at 5 m²
    assert run(session, town, zone, rules, city, capacity=20).passed
    bad = only(run(session, town, zone, rules, city, capacity=21), "capacity")
    assert bad.details["max_capacity"] == 20
    assert town.local(bad.geometry).area == pytest.approx(100, rel=1e-4)


def test_zone_must_lie_in_one_district(session, town, rules, city) -> None:
    bad = only(run(session, town, box(1980, 300, 2010, 310), rules, city), "district")
    outside = town.local(bad.geometry)
    assert outside.area == pytest.approx(100, rel=1e-3)  # the 10 m x 10 m east of x = 2000
    assert outside.bounds[0] == pytest.approx(2000, abs=0.01)
    nowhere = only(run(session, town, box(5000, 0, 5010, 10), rules, city), "district")
    assert town.local(nowhere.geometry).area == pytest.approx(100, rel=1e-3)
    wrong = only(run(session, town, box(300, 300, 310, 310), rules, city,
                     district_code=f"{town.prefix}02"), "district")
    assert wrong.details["district_code"] == town.district


def _insert_zone(session: Session, town: Town, geom: Polygon, slots, seasons=()) -> int:
    import json

    return session.execute(text("""
        INSERT INTO stall_zones (name, zone_type, district_code, time_slots, seasons, capacity,
                                 operator, geom)
        VALUES ('已有夜市', 'night_market', :d, CAST(:s AS jsonb), CAST(:se AS jsonb), 5, '某',
                ST_GeomFromText(:g, 4326)) RETURNING id
    """), {"d": town.district, "s": json.dumps(slots), "se": json.dumps(list(seasons)),
           "g": town.wgs84(geom).wkt}).scalar_one()


def test_overlap_in_space_is_allowed_only_with_disjoint_slots(session, town, rules,
                                                             city) -> None:
    existing = _insert_zone(session, town, box(400, 400, 420, 420),
                            [{"days": [5], "start": "18:00", "end": "02:00"}])
    overlapping = box(410, 410, 430, 430)
    morning = [{"days": [6], "start": "03:00", "end": "05:00"}]
    assert run(session, town, overlapping, rules, city, time_slots=morning).passed
    after_midnight = [{"days": [6], "start": "01:00", "end": "03:00"}]
    bad = only(run(session, town, overlapping, rules, city, time_slots=after_midnight),
               "time_overlap")
    assert bad.details["other_zone_id"] == existing
    assert bad.details["common_time"]["weekday"] == 6
    assert town.local(bad.geometry).area == pytest.approx(100, rel=1e-3)
    # Touching along an edge is not an overlap.
    assert run(session, town, box(420, 400, 440, 420), rules, city,
               time_slots=after_midnight).passed


def test_seasonal_zones_overlap_only_when_seasons_meet(session, town, rules, city) -> None:
    every_day = [{"days": [1, 2, 3, 4, 5, 6, 7], "start": "18:00", "end": "22:00"}]
    _insert_zone(session, town, box(500, 500, 520, 520), every_day,
                 [{"from": "06-01", "to": "09-29"}])
    same_place = box(505, 505, 525, 525)
    assert run(session, town, same_place, rules, city, time_slots=every_day,
               seasons=[{"from": "10-01", "to": "10-31"}]).passed
    only(run(session, town, same_place, rules, city, time_slots=every_day,
             seasons=[{"from": "09-29", "to": "10-05"}]), "time_overlap")


def test_retired_zones_do_not_block(session, town, rules, city) -> None:
    existing = _insert_zone(session, town, box(600, 600, 620, 620), NIGHTLY)
    session.execute(text("UPDATE stall_zones SET status = 'retired' WHERE id = :i"),
                    {"i": existing})
    assert run(session, town, box(600, 600, 620, 620), rules, city).passed


def test_several_rules_at_once_each_reported(session, town, rules, city) -> None:
    result = run(session, town, box(1380, 1482, 1420, 1488), rules, city, capacity=500)
    assert {v.rule for v in result.violations} == {"demonstration_street", "capacity"}
    for v in result.violations:
        feature = v.to_feature()
        assert feature["type"] == "Feature" and feature["geometry"]["type"]
        assert feature["properties"]["message_zh"] and feature["properties"]["message_en"]


# ---- geometry refused before any rule ---------------------------------------------------------

def test_self_intersecting_polygon_is_refused_with_a_repair_offer(session, town, rules,
                                                                  city) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[list(town.wgs84(Point(p)).coords[0]) for p in
                                                  [(0, 0), (20, 20), (20, 0), (0, 20), (0, 0)]]]}
    feature = {**town.zone(box(0, 0, 1, 1)), "geometry": bowtie}
    with pytest.raises(InvalidZoneGeometryError, match="Self-intersection") as info:
        check_feature(session, feature=feature, rules=rules, city=city)
    assert info.value.repair is not None and info.value.repair["type"] == "MultiPolygon"


@pytest.mark.parametrize("geometry,needle", [
    ({"type": "Point", "coordinates": [117.0, 36.0]}, "must be a Polygon"),
    ({"type": "Polygon", "coordinates": [[[117.0, 36.0], [117.001, 36.0], [117.0, 36.001]]]},
     "at least 4 positions"),
    ({"type": "Polygon", "coordinates": [[[117.0, 36.0], [117.001, 36.0], [117.0, 36.001],
                                          [117.0, 36.0005]]]}, "not closed"),
    (None, "no geometry"),
])
def test_malformed_geometry_is_refused(session, town, rules, city, geometry, needle) -> None:
    feature = {**town.zone(box(0, 0, 1, 1)), "geometry": geometry}
    with pytest.raises(InvalidInputError, match=needle):
        check_feature(session, feature=feature, rules=rules, city=city)


def test_zone_outside_the_city_is_refused(session, town, rules, city) -> None:
    far = {"type": "Polygon", "coordinates": [[[120.0, 30.0], [120.001, 30.0],
                                               [120.001, 30.001], [120.0, 30.0]]]}
    with pytest.raises(OutsideCityError, match="leave the city"):
        check_feature(session, feature={**town.zone(box(0, 0, 1, 1)), "geometry": far},
                      rules=rules, city=city)


def test_bad_properties_are_refused_naming_the_field(session, town, rules, city) -> None:
    with pytest.raises(InvalidInputError, match="capacity"):
        check_feature(session, feature=town.zone(box(0, 0, 10, 10), capacity=0), rules=rules,
                      city=city)
    with pytest.raises(InvalidInputError, match="08:00-08:00"):
        check_feature(session, feature=town.zone(box(0, 0, 10, 10), time_slots=[
            {"days": [1], "start": "08:00", "end": "08:00"}]), rules=rules, city=city)


def test_demo_sites_are_deterministic_simulated_and_inside_the_district(session, town,
                                                                        city) -> None:
    from gis.zones.demo_sites import add_demo_sites

    here = city.model_copy(update={"district_code": town.district})
    session.execute(text("DELETE FROM sensitive_sites WHERE geom && ST_Transform(ST_MakeEnvelope("
                         ":x1, :y1, :x2, :y2, 4548), 4326)"),
                    {"x1": town.x0 - 2000, "y1": town.y0 - 2000, "x2": town.x0 + 2000,
                     "y2": town.y0 + 2000})
    counts = {"school_gate": 2, "kindergarten": 1, "hospital": 1, "metro_exit": 1,
              "fire_lane": 2}
    first = add_demo_sites(session, city=here, seed=7, counts=counts)
    assert first == {"school_gate": 2, "kindergarten": 1, "hospital": 1, "metro_exit": 4,
                     "fire_lane": 2}
    rows = session.execute(text("SELECT name, kind, simulated, ST_AsText(geom) FROM "
                                "sensitive_sites ORDER BY id DESC LIMIT 10")).all()
    assert all(r.simulated for r in rows)
    session.execute(text("DELETE FROM sensitive_sites WHERE id IN (SELECT id FROM "
                         "sensitive_sites ORDER BY id DESC LIMIT 10)"))
    add_demo_sites(session, city=here, seed=7, counts=counts)
    again = session.execute(text("SELECT name, kind, simulated, ST_AsText(geom) FROM "
                                 "sensitive_sites ORDER BY id DESC LIMIT 10")).all()
    assert [tuple(r) for r in again] == [tuple(r) for r in rows]
