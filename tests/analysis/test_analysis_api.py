"""Analysis API over constructed data (real PostGIS), responses validated against the models.

The app's session is the test's rolled-back session, so nothing is committed and the demo city
(if loaded) is kept out by the bbox / scope parameters.
"""

from __future__ import annotations

import datetime as dt
import doctest
import re
from collections.abc import Iterator

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.deps import get_session
from api.main import create_app
from api.routes.analysis import AnalysisFeatures, IndicatorsOut
from gis.analysis import cover_risk, reports
from gis.analysis.common import CHINA_TZ
from gis.analysis.cover_risk import find_cover_risks, summarise_cover_risks
from gis.platform.errors import InvalidInputError
from tests.analysis.test_dark_streets import (
    BBOX,
    DISTRICT,
    METRIC,
    insert_areas,
    insert_light,
    insert_road,
    lonlat,
    square,
)
from tests.analysis.test_indicators import GRID1, at, insert_case
from tests.analysis.test_station_coverage import ROW1, ROW2, insert_station
from tests.support.accounts import headers_for

BBOX_Q = ",".join(f"{v:.6f}" for v in BBOX)
AS_OF = dt.datetime(2024, 5, 13, 12, tzinfo=CHINA_TZ)


def insert_cover(session: Session, serial: int, x: float, y: float, *, cls: str = "0102",
                 state: str = "damaged", updated: dt.datetime, owner: str = "排水管理处",
                 in_use: bool = True) -> str:
    code = f"{DISTRICT}{cls}{serial:06d}"
    lon, lat = lonlat(x, y)
    session.execute(text("""
        INSERT INTO manhole_covers (code, state, in_use, owner, maintainer, grid_code,
            recorded_at, updated_at, geom)
        VALUES (:c, :s, :u, :o, '某养护公司', :g, :t, :t, ST_SetSRID(ST_MakePoint(:x, :y), 4326))
    """), {"c": code, "s": state, "u": in_use, "o": owner, "g": GRID1, "t": updated,
           "x": lon, "y": lat})
    return code


def build_city(session: Session) -> dict[str, int]:
    """Areas, a lit street with one 80 m hole, a station and roads, a week of cases, covers."""
    insert_areas(session, {**ROW1, **ROW2})
    main = insert_road(session, [(0, -500), (200, -500)], "亮灯路")
    for i, x in enumerate(range(0, 201, 20)):
        if not 100 < x < 180:
            insert_light(session, i + 1, x, -500)
    insert_station(session, 0, 50)
    insert_road(session, [(0, 50), (1000, 50)], "甲路")
    insert_road(session, [(1000, 50), (1000, 250), (0, 250)], "乙路")
    insert_case(session, "A1", reported=at(6), status="evaluated", dispatched=at(6, 10),
                due=at(8), closed=at(7), satisfaction="satisfied", surveyed=at(8))
    insert_case(session, "A2", reported=at(7), status="closed", dispatched=at(7, 10),
                due=at(9), closed=at(10))
    insert_case(session, "A3", reported=at(8), status="dispatched", dispatched=at(8, 10),
                due=at(9))
    # Covers: one missing (high), one damaged for 3 days (high), one damaged 2 h (medium),
    # one retired, one intact; the missing one has an open case beside it.
    insert_cover(session, 1, 10, 10, state="missing", updated=AS_OF - dt.timedelta(hours=5))
    insert_cover(session, 2, 20, 10, cls="0111", state="damaged", owner="燃气公司",
                 updated=AS_OF - dt.timedelta(days=3))
    insert_cover(session, 3, 80, 10, state="damaged", updated=AS_OF - dt.timedelta(hours=2))
    insert_cover(session, 4, 40, 10, state="missing", updated=AS_OF, in_use=False)
    insert_cover(session, 5, 50, 10, state="intact", updated=AS_OF)
    insert_case(session, "C1", reported=AS_OF - dt.timedelta(hours=4), status="dispatched",
                kind="component", code="0102", xy=(12, 12))
    return {"main": main}


@pytest.fixture
def city(session: Session) -> dict[str, int]:
    return build_city(session)


@pytest.fixture
def client(test_settings, session: Session) -> Iterator[TestClient]:
    app = create_app(test_settings)
    app.dependency_overrides[get_session] = lambda: session
    with TestClient(app, headers=headers_for(session, "analyst")) as c:
        yield c


def test_dark_streets_geojson(client: TestClient, city) -> None:
    for method in ("postgis", "kdtree"):
        r = client.get("/analysis/dark-streets", params={"bbox": BBOX_Q, "step_m": 4,
                                                          "method": method})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/geo+json")
        body = AnalysisFeatures.model_validate(r.json())
        [gap] = [f for f in body.features if f["properties"]["road_id"] == city["main"]]
        assert gap["properties"]["gap_m"] == pytest.approx(80, abs=0.01)
        assert gap["properties"]["max_distance_m"] == pytest.approx(40, abs=0.01)
        assert gap["properties"]["dark_m"] == pytest.approx(20, abs=0.01)
        assert gap["geometry"]["type"] == "LineString"
        drawn = gpd.GeoSeries([shape(gap["geometry"])], crs=4326).to_crs(METRIC).length[0]
        assert drawn == pytest.approx(20, abs=0.01)  # the dark stretch, not the 80 m gap
        assert body.summary[0]["district_code"] == DISTRICT
        assert body.parameters["method"] == method
        assert body.about is not None and body.about["parameters"]["method"] == method
        assert "超距路段本身" in body.about["method"] and body.about["as_of"]
    r = client.get("/analysis/dark-streets", params={"bbox": BBOX_Q, "step_m": 4,
                                                      "by": "street_class"})
    body = AnalysisFeatures.model_validate(r.json())
    [managed] = body.summary  # every constructed road is a 规范街
    assert (managed["street_class_zh"], managed["roads_total"]) == ("规范街", 3)
    # 20 m on 亮灯路 plus the unlit 甲路 (1000 m) and 乙路 (1200 m), of 2400 m of road.
    assert managed["dark_m"] == pytest.approx(2220, abs=0.01)
    assert managed["dark_share"] == pytest.approx(2220 / 2400, abs=1e-4)


def test_coverage_gaps_geojson(client: TestClient, city) -> None:
    r = client.get("/analysis/coverage-gaps", params={"bbox": BBOX_Q, "threshold_m": 500,
                                                       "gaps_only": True})
    body = AnalysisFeatures.model_validate(r.json())
    assert body.numberReturned == 15  # row 1 east half + all of row 2 (network distance)
    assert {f["properties"]["method"] for f in body.features} == {"network"}
    assert body.summary[0]["uncovered"] == 15 and body.summary[0]["grids"] == 20
    # Row 2 is ~200 m away in a straight line, 1250-2150 m along the street: both reported,
    # the grids with a walk over 3x the line flagged for review.
    row2 = [f["properties"] for f in body.features if f["properties"]["straight_m"] < 400]
    assert row2 and all(p["network_m"] >= 1250 for p in row2)
    assert all(p["review"] for p in row2 if p["network_m"] > 3 * p["straight_m"])
    assert body.network is not None and body.network["islands"] == 2  # 亮灯路 stands apart
    assert body.network["stations"][0]["snap_m"] == 0
    assert body.about is not None and "并查集" in body.about["method"]


def test_hotspots_geojson(client: TestClient, city) -> None:
    r = client.get("/analysis/hotspots", params={
        "bbox": BBOX_Q, "end": "2024-05-13T00:00:00+08:00", "days": 7, "resolution": 10})
    body = AnalysisFeatures.model_validate(r.json())
    assert sum(f["properties"]["cases"] for f in body.features) == 3
    assert body.features[0]["geometry"]["type"] == "Polygon"
    assert body.about is not None
    assert body.about["study_area"].startswith("测试区（范围框内部分） (379901)")
    assert body.about["as_of"] == "2024-05-13T00:00:00+08:00"
    assert "Gi*" in body.about["method"] and body.parameters["permutations"] == 9999
    # Three complaints cannot make a hot neighbourhood: every cell says so.
    assert {f["properties"]["label"] for f in body.features} == {"不显著"}
    r = client.get("/analysis/hotspots", params={"bbox": BBOX_Q, "area": "379901999"})
    assert r.status_code == 404, r.text


def test_indicators_json(client: TestClient, city) -> None:
    r = client.get("/analysis/indicators", params={
        "period": "weekly", "day": "2024-05-08", "by": "district", "scope": DISTRICT})
    assert r.status_code == 200, r.text
    body = IndicatorsOut.model_validate(r.json())
    [row] = body.rows
    assert (row.key, row.name, row.accepted, row.due, row.closed, row.closed_on_time) == (
        DISTRICT, "测试区", 3, 3, 2, 1)
    assert (row.closure_rate, row.on_time_rate, row.open_overdue) == (66.67, 33.33, 1)
    assert body.definitions["按期结案率"] == "按期结案数 / 应结案数"
    assert body.start == dt.datetime(2024, 5, 6, tzinfo=CHINA_TZ)
    bad = client.get("/analysis/indicators", params={"start": "2024-05-06T00:00:00+08:00"})
    assert bad.status_code == 422 and "start and end" in bad.json()["detail"]


def test_cover_risk(session: Session, city, client: TestClient) -> None:
    insert_cover(session, 6, 90, 10, state="damaged", updated=AS_OF - dt.timedelta(hours=10))
    risks = find_cover_risks(session, as_of=AS_OF, bbox=BBOX)
    # Missing: high at once; damaged: low under 4 h, medium to 24 h, high after.
    assert risks[["code", "state", "risk"]].values.tolist() == [
        [f"{DISTRICT}0102000001", "missing", "high"],
        [f"{DISTRICT}0111000002", "damaged", "high"],
        [f"{DISTRICT}0102000006", "damaged", "medium"],
        [f"{DISTRICT}0102000003", "damaged", "low"]]
    assert risks["hours"].tolist() == [5.0, 72.0, 10.0, 2.0]
    assert risks["open_case_no"].tolist() == ["C1", None, None, None]
    assert risks["class_name"].tolist() == ["污水井盖", "燃气井盖", "污水井盖", "污水井盖"]
    by_owner = summarise_cover_risks(risks, by="owner").set_index("owner")
    assert by_owner.loc["排水管理处", ["missing", "damaged", "high", "medium", "low"]
                        ].tolist() == [1, 2, 1, 1, 1]
    assert doctest.testmod(cover_risk, optionflags=doctest.ELLIPSIS).failed == 0
    # A 2 h old damage is medium when medium starts at 1 h.
    assert find_cover_risks(session, as_of=AS_OF, bbox=BBOX, damaged_medium_after_h=1
                            )["risk"].tolist()[-1] == "medium"
    with pytest.raises(InvalidInputError, match="damaged_medium_after_h"):
        find_cover_risks(session, damaged_medium_after_h=30)

    r = client.get("/analysis/cover-risk", params={"bbox": BBOX_Q, "by": "owner"})
    body = AnalysisFeatures.model_validate(r.json())
    assert body.numberReturned == 4 and body.features[0]["geometry"]["type"] == "Point"
    assert {s["owner"] for s in body.summary} == {"排水管理处", "燃气公司"}
    assert body.about is not None and "不足 4 小时为低风险" in body.about["method"]
    assert body.about["study_area"].startswith("范围框")
    assert body.parameters["damaged_medium_after_h"] == 4


def test_weekly_report_and_chart(client: TestClient, city) -> None:
    r = client.get("/reports/weekly", params={"day": "2024-05-08", "scope": DISTRICT})
    assert r.status_code == 200, r.text
    html = r.text
    assert '<html lang="zh-CN">' in html and "周报（2024-05-06 至 2024-05-12）" in html
    assert "66.67%" in html and "33.33%" in html  # closure and on-time rate
    assert "超期未结" in html and "测试区" in html and "测试街道" in html
    assert html.count("data:image/png;base64,") >= 1
    assert "http://" not in html and "https://" not in html
    png = client.get("/reports/weekly/trend.png", params={"day": "2024-05-08"})
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert client.get("/reports/yearly").status_code == 422
    assert doctest.testmod(reports).failed == 0


@pytest.mark.parametrize(("period", "title", "counts", "rates"), [
    # 8 May alone: A3 reported; A1 due that day and closed on the 7th.
    ("daily", "日报（2024-05-08）",
     "受理数 1，立案数 1，派遣数 1，应结案数 1，结案数 1，按期结案数 1", ("100.00%", "100.00%")),
    ("weekly", "周报（2024-05-06 至 2024-05-12）",
     "受理数 3，立案数 3，派遣数 3，应结案数 3，结案数 2，按期结案数 1", ("66.67%", "33.33%")),
    # May: the week's three plus the cover case C1 of 13 May (not yet dispatched).
    ("monthly", "月报（2024-05-01 至 2024-05-31）",
     "受理数 4，立案数 4，派遣数 3，应结案数 3，结案数 2，按期结案数 1", ("66.67%", "33.33%")),
])
def test_report_periods(client: TestClient, city, period: str, title: str, counts: str,
                        rates: tuple[str, str]) -> None:
    r = client.get(f"/reports/{period}", params={"day": "2024-05-08", "scope": DISTRICT})
    assert r.status_code == 200, r.text
    html = r.text
    assert title in html.split("<h1>")[1].split("</h1>")[0]
    assert counts in html  # the period's range decides which cases count
    closure, on_time = rates
    headline = html.split("<h2>二、")[0]
    assert f"<span>结案率</span><b>{closure}</b>" in headline
    assert f"<span>按期结案率</span><b>{on_time}</b>" in headline


def insert_rival_district(session: Session) -> None:
    """A second district east of the first, coded to sort before it, that does worse.

    Two cases due in the week of 6 May: one closed late, one still open and overdue, so
    its on-time rate is 0 % against 33.33 % for 测试区.
    """
    district, street, community = "379800", "379800001", "379800001001"
    outline = f"ST_Multi(ST_GeomFromText('{square(3500, -500, 1500)}', 4326))"
    session.execute(text(f"INSERT INTO districts (code, name, source, simulated, geom) "
                         f"VALUES ('{district}', '对照区', 'test', true, {outline})"))
    session.execute(text(f"INSERT INTO subdistricts (code, name, district_code, geom) "
                         f"VALUES ('{street}', '对照街道', '{district}', {outline})"))
    session.execute(text(f"INSERT INTO communities (code, name, subdistrict_code, geom) "
                         f"VALUES ('{community}', '对照社区', '{street}', {outline})"))
    grid = community + "01"
    session.execute(text("INSERT INTO grid_cells (code, community_code, geom) "
                         "VALUES (:c, :m, ST_GeomFromText(:g, 4326))"),
                    {"c": grid, "m": community, "g": square(4000, 0, 100)})
    insert_case(session, "B1", reported=at(6), status="closed", dispatched=at(6, 10),
                due=at(8), closed=at(9), grid=grid, xy=(4050, 50))
    insert_case(session, "B2", reported=at(6), status="dispatched", dispatched=at(6, 10),
                due=at(7), grid=grid, xy=(4060, 50))


def ranking(html: str, heading: str) -> list[list[str]]:
    """Rows (cell texts) of the ranking table under `heading`."""
    section = html.split(f"<h2>{heading}</h2>")[1].split("<h2>")[0]
    return [re.findall(r"<td[^>]*>([^<]*)</td>", row)
            for row in re.findall(r"<tr>(<td.*?)</tr>", section)]


def test_report_ranks_districts_and_streets(client: TestClient, session: Session,
                                            city) -> None:
    insert_rival_district(session)
    r = client.get("/reports/weekly", params={"day": "2024-05-08"})
    assert r.status_code == 200, r.text
    # rank, name, accepted, due, closed, closure rate, on time, on-time rate, open overdue
    districts = [row[:9] for row in ranking(r.text, "二、各区排名")]
    assert districts == [
        ["1", "测试区", "3", "3", "2", "66.67%", "1", "33.33%", "1"],
        ["2", "对照区", "2", "2", "1", "50.00%", "0", "0.00%", "1"]]
    streets = [row[:2] for row in ranking(r.text, "三、各街道排名")]
    assert streets == [["1", "测试街道"], ["2", "对照街道"]]
    section = r.text.split("<h2>二、各区排名</h2>")[1].split("<h2>三、")[0]
    assert "data:image/png;base64," in section  # the ranking chart, drawn for two or more


def test_bad_parameters_are_422(client: TestClient) -> None:
    assert client.get("/analysis/dark-streets", params={"threshold_m": -1}).status_code == 422
    r = client.get("/analysis/dark-streets", params={"bbox": "1,2,3"})
    assert r.status_code == 422 and "'1,2,3'" in r.json()["detail"]
