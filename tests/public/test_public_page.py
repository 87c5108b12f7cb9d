"""The public convenience map: base maps and GCJ-02 shift (no database), then the page over the
demo city in headless Chromium with every non-loopback request aborted."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from shapely.geometry import Polygon
from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.main import create_app
from gis.geo.coords import wgs84_to_gcj02
from gis.platform.settings import PublicMapSettings
from maps.assets import render_html
from maps.basemaps import basemap_for
from maps.public import public_map
from tests.support.browser import chromium_or_skip, offline_page, serve

FRIDAY_NIGHT = "2026-06-05T23:30"  # a Friday in the seasonal stalls' season
FRIDAY_MORNING = "2026-06-05T10:00"
TOILET = {"id": 7, "name": "公厕", "kind": "public_toilet", "kind_zh": "公厕", "address": "某路",
          "opening_hours": "24小时", "phone": None, "open_now": True, "lon": 117.05,
          "lat": 36.66}


def _config(html: str) -> dict:
    match = re.search(r"var CONFIG = (\{.*?\});\n", html)
    assert match, "page has no CONFIG"
    return json.loads(match.group(1))


def _data(html: str) -> dict:
    match = re.search(r"var DATA = (\{.*?\});\n", html)
    assert match, "page has no DATA"
    return json.loads(match.group(1))


def _render(settings: PublicMapSettings) -> str:
    districts = gpd.GeoDataFrame(
        {"name": ["历下区"]}, geometry=[Polygon([(117.0, 36.6), (117.1, 36.6), (117.1, 36.7)])],
        crs=4326)
    m = public_map(facilities=[TOILET], stations=[], stall_zones=[], districts=districts,
                   basemap=basemap_for(settings), center=(36.66, 117.05), at=FRIDAY_NIGHT,
                   at_fixed=True)
    return render_html(m, title="便民服务地图")


def test_default_base_map_is_offline_outlines():
    html = _render(PublicMapSettings())
    config = _config(html)
    assert config["tiles"] == [] and config["crs"] == "wgs84"
    assert "http" not in json.dumps(config)
    data = _data(html)
    assert (data["facilities"][0]["lon"], data["facilities"][0]["lat"]) == (117.05, 36.66)
    assert 'name="viewport"' in html and '<html lang="zh-CN">' in html


def test_amap_shifts_every_feature_to_gcj02():
    html = _render(PublicMapSettings(basemap="AMap"))
    config = _config(html)
    assert config["crs"] == "gcj02"
    assert "autonavi.com" in config["tiles"][0]["url"]
    data = _data(html)
    gx, gy = wgs84_to_gcj02(117.05, 36.66)
    toilet = data["facilities"][0]
    assert (toilet["lon"], toilet["lat"]) == pytest.approx((gx, gy), abs=1e-7)
    assert toilet["lon"] != 117.05  # ~500 m east in Jinan
    ring = data["districts"]["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == pytest.approx(list(wgs84_to_gcj02(117.0, 36.6)), abs=1e-5)


def test_osm_and_tianditu_need_no_shift_and_tianditu_needs_a_key():
    assert _config(_render(PublicMapSettings(basemap="osm")))["crs"] == "wgs84"
    tianditu = _config(_render(PublicMapSettings(basemap="tianditu", tianditu_key="abc123")))
    assert tianditu["crs"] == "wgs84"
    assert [t["url"].split("/")[3] for t in tianditu["tiles"]] == ["vec_w", "cva_w"]
    assert all("tk=abc123" in t["url"] for t in tianditu["tiles"])
    with pytest.raises(ValidationError, match="TIANDITU_KEY"):
        PublicMapSettings(basemap="tianditu")
    with pytest.raises(ValidationError):
        PublicMapSettings(basemap="google")
    mirror = PublicMapSettings(basemap="osm", tile_url="http://tiles.local/{z}/{x}/{y}.png")
    assert _config(_render(mirror))["tiles"][0]["url"] == "http://tiles.local/{z}/{x}/{y}.png"


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def base_url(app: FastAPI) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def app(demo_settings) -> FastAPI:
    return create_app(demo_settings)


def test_page_serves_public_data_only(base_url: str) -> None:
    response = httpx.get(f"{base_url}/public", params={"at": FRIDAY_NIGHT}, timeout=60)
    assert response.status_code == 200
    html = response.text
    assert '<html lang="zh-CN">' in html and 'name="viewport"' in html
    data = _data(html)
    assert set(data) == {"facilities", "stations", "zones", "districts"}
    # 历下区's 300 facilities; stations of all three demo districts (139 + 市中区 + 天桥区).
    assert len(data["facilities"]) == 300 and len(data["stations"]) == 632
    assert {tuple(sorted(z)) for z in data["zones"]} == {tuple(sorted(
        ["id", "name", "zone_type", "zone_type_zh", "schedule_zh", "time_slots", "seasons",
         "capacity", "operator", "open_now", "lon", "lat", "geometry"]))}
    assert {tuple(sorted(s)) for s in data["stations"]} == {tuple(sorted(
        ["id", "name", "address", "phone", "opening_hours", "lon", "lat"]))}
    for internal in ('"staff"', '"status"', '"owner', '"simulated"', '"draft"'):
        assert internal not in html
    api = httpx.get(f"{base_url}/public/stall-zones",
                    params={"at": FRIDAY_NIGHT, "open_now": "false"}).json()
    assert sorted(z["id"] for z in data["zones"]) == sorted(f["id"] for f in api["features"])


def test_index_links_the_public_map(base_url: str) -> None:
    assert 'href="/public"' in httpx.get(f"{base_url}/").text


def test_amap_page_lines_up_with_gcj02_tiles(demo_settings) -> None:
    from fastapi.testclient import TestClient

    settings = demo_settings.model_copy(deep=True)
    settings.public = PublicMapSettings(basemap="amap")
    with TestClient(create_app(settings)) as client:
        html = client.get("/public").text
        api = client.get("/public/facilities").json()
    data, config = _data(html), _config(html)
    assert config["crs"] == "gcj02" and config["basemap"]["name"] == "高德地图"
    wgs = {f["id"]: f["geometry"]["coordinates"] for f in api["features"]}
    for facility in data["facilities"][:50]:
        gx, gy = wgs84_to_gcj02(*wgs[facility["id"]])
        assert (facility["lon"], facility["lat"]) == pytest.approx((gx, gy), abs=1e-7)


def _open_zone_ids(base_url: str, at: str) -> set[int]:
    body = httpx.get(f"{base_url}/public/stall-zones", params={"at": at}).json()
    return {f["id"] for f in body["features"]}


def _open_by_slots(slots: list[dict], seasons: list[dict], at: datetime) -> bool:
    """Written apart from gis.zones: a weekly slot (across midnight allowed) and MM-DD seasons."""
    day, minute, month_day = at.isoweekday(), at.hour * 60 + at.minute, at.strftime("%m-%d")
    if seasons and not any(s["from"] <= month_day <= s["to"] for s in seasons):
        return False

    def minutes(hhmm: str) -> int:
        return int(hhmm[:2]) * 60 + int(hhmm[3:])

    for slot in slots:
        start, end = minutes(slot["start"]), minutes(slot["end"])
        if end > start and day in slot["days"] and start <= minute < end:
            return True
        if end <= start and ((day in slot["days"] and minute >= start)
                             or ((day - 2) % 7 + 1 in slot["days"] and minute < end)):
            return True
    return False


def _approved_zones(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(
            "SELECT id, name, time_slots, seasons FROM stall_zones WHERE status = 'approved' "
            "ORDER BY id")).mappings()]


def test_public_page_in_chromium_offline(chromium: Path, base_url: str,
                                         demo_engine: Engine) -> None:
    night_open = _open_zone_ids(base_url, FRIDAY_NIGHT)
    morning_open = _open_zone_ids(base_url, FRIDAY_MORNING)
    assert night_open and morning_open and not night_open & morning_open
    # Independently of the server's schedule code: the zones open by their stored slots.
    approved = _approved_zones(demo_engine)
    night, morning = (datetime.fromisoformat(FRIDAY_NIGHT),
                      datetime.fromisoformat(FRIDAY_MORNING))
    expected_night = {z["id"] for z in approved if _open_by_slots(z["time_slots"],
                                                                  z["seasons"], night)}
    expected_morning = {z["id"] for z in approved if _open_by_slots(z["time_slots"],
                                                                    z["seasons"], morning)}
    # One known zone: the first approved night market open 18:00-02:00 every day.
    late = next(z for z in approved if z["time_slots"] == [
        {"days": [1, 2, 3, 4, 5, 6, 7], "start": "18:00", "end": "02:00"}])
    early = next(z for z in approved if z["time_slots"] == [
        {"days": [1, 2, 3, 4, 5, 6, 7], "start": "18:00", "end": "22:30"}])
    with demo_engine.connect() as conn:
        drafts = set(conn.execute(text(
            "SELECT name FROM stall_zones WHERE status <> 'approved'")).scalars())
        # The browser's position: a point inside the district; the nearest toilets by SQL.
        here = conn.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface("
                                 "geom) AS p FROM districts LIMIT 1) d")).one()
        nearest = conn.execute(text(
            "SELECT name, ST_Distance(geom::geography, "
            "ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography) AS m "
            "FROM pub.facilities WHERE kind = 'public_toilet' ORDER BY m LIMIT 5"),
            {"x": here[0], "y": here[1]}).all()

    # A phone: small viewport, touch, Chinese locale, and a position to share.
    with offline_page(chromium, width=390, height=844, device_scale_factor=2, is_mobile=True,
                      has_touch=True, permissions=["geolocation"],
                      geolocation={"longitude": here[0], "latitude": here[1],
                                   "accuracy": 10}) as browser:
        page = browser.page
        def visible() -> list[dict]:
            result: list[dict] = page.evaluate("window.cgPublic.visible()")
            return result

        # 23:30 on a Friday: only the night markets that run past midnight are open.
        response = page.goto(f"{base_url}/public?at={FRIDAY_NIGHT}", wait_until="load",
                             timeout=120_000)
        assert response is not None and response.status == 200
        page.wait_for_selector(".marker-cluster", timeout=30_000)
        clusters = page.locator(".marker-cluster").count()
        assert clusters > 0
        zones = {i["id"] for i in visible() if i["kind"] == "stall_zone"}
        assert zones == night_open
        assert zones == expected_night
        assert late["id"] in zones and early["id"] not in zones, (late, early)
        names = {i["name"] for i in visible() if i["kind"] == "stall_zone"}
        assert names and all("夜市" in n for n in names), names
        assert not names & drafts
        # "只看营业中" hides the market (closes 20:00) and shows the 24-hour toilets.
        kinds_now = {i["kind"] for i in visible()}
        assert "farmers_market" not in kinds_now and "public_toilet" in kinds_now
        assert all(i["open"] is not False for i in visible())
        assert "2026-06-05 23:30" in page.locator("#cg-time").inner_text()

        # Switching "open now" off shows every approved zone, closed ones too.
        page.locator("#cg-open-now").uncheck()
        all_zones = {i["id"] for i in visible() if i["kind"] == "stall_zone"}
        assert all_zones > night_open and morning_open <= all_zones
        page.locator("#cg-open-now").check()

        # Filter by kind: only toilets, then all again (tests/public/test_public_layout.py).
        page.locator(".cg-chip[data-kind=public_toilet]").click()
        assert {i["kind"] for i in visible()} == {"public_toilet"}
        shown = int(page.locator("#cg-count").inner_text().split()[1])
        assert shown == len(visible())
        page.locator(".cg-chip[data-kind=public_toilet]").click()

        # Nearest to a tapped point: pick mode, tap the map, read the list.
        page.select_option("#cg-near-kind", "public_toilet")
        page.locator("#cg-pick").click()
        # The page opens on all three demo districts; the facilities are 历下区's, so the tap
        # goes to the middle of 历下区 (the city centre setting), not of the whole view.
        page.evaluate("window.cgPublic.map.setView([36.665, 117.07], 15, {animate: false})")
        box = page.locator(".folium-map").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector(".cg-result", timeout=15_000)
        results = page.locator(".cg-result").all_inner_texts()
        assert len(results) == 5 and all("步行约" in r and "米" in r for r in results)
        assert not any("未营业" in r for r in results)  # "只看营业中" applies here too
        page.wait_for_timeout(1000)  # let the zoom animation finish before the screenshot
        browser.screenshot("public_map_night.png")

        # 离我最近 from the browser's location, every toilet counted (open or not): the list
        # starts with the toilet nearest by PostGIS geography, at 1.3 x that distance.
        page.locator("#cg-open-now").uncheck()
        page.evaluate("document.getElementById('cg-results').innerHTML = ''")
        page.locator("#cg-locate").click()
        page.wait_for_selector(".cg-result", timeout=15_000)
        results = page.locator(".cg-result").all_inner_texts()
        assert len(results) == 5, page.inner_text("#cg-status")
        assert "最近的公厕" in page.inner_text("#cg-status")
        for text_, (name, metres) in zip(results, nearest, strict=True):
            assert text_.startswith(name), (results, nearest)
            walked = int(re.search(r"步行约 (\d+) 米", text_).group(1))  # type: ignore[union-attr]
            assert walked == pytest.approx(metres * 1.3, abs=1.5), (text_, metres)
        page.locator("#cg-open-now").check()

        # 10:00 the same Friday: the night markets are closed, the day stalls are open.
        page.goto(f"{base_url}/public?at={FRIDAY_MORNING}", wait_until="load")
        page.wait_for_selector(".marker-cluster", timeout=30_000)
        zones = {i["id"] for i in visible() if i["kind"] == "stall_zone"}
        assert zones == morning_open
        assert zones == expected_morning
        assert late["id"] not in zones
        page.locator("#cg-open-now").uncheck()  # still on the map, shown as closed
        closed = [i for i in visible() if i["kind"] == "stall_zone" and i["id"] == late["id"]]
        assert [(i["name"], i["open"]) for i in closed] == [(late["name"], False)]
        page.locator("#cg-open-now").check()
        assert not any("夜市" in i["name"] for i in visible() if i["kind"] == "stall_zone")
        assert "farmers_market" in {i["kind"] for i in visible()}
        page.wait_for_timeout(500)
        browser.screenshot("public_map_morning.png")
        assert page.evaluate("document.documentElement.lang") == "zh-CN"

    assert browser.external == [], f"page tried to leave the app: {browser.external}"
    assert browser.errors == [], f"JavaScript errors: {browser.errors}"
    print(f"\n/public: {clusters} cluster icons; open at 23:30 {sorted(night_open)}, "
          f"at 10:00 {sorted(morning_open)}")


def test_page_render_time(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        client.get("/public")
        started = time.perf_counter()
        response = client.get("/public", params={"at": FRIDAY_NIGHT})
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    print(f"\n/public rendered in {elapsed * 1000:.0f} ms, {len(response.content) / 1e3:.0f} kB")
