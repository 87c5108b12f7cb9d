"""Stored XSS: script payloads in every shown text field, every page in Chromium: none runs.

A constructed city (tests/analysis/test_analysis_api.py's, plus owners, facilities, approved and
draft stall zones, a sensitive site) is committed to a throwaway database; then every text field the
pages show gets a payload that, if it ever ran, would open a dialog and set `window.__xss`:
HTML tags with handlers, attribute and `<script>` breakouts, JavaScript string and template
literal breakouts, a `javascript:` URL. One more facility arrives through the layer import API.
Each page is opened as an admin (or anonymously) with a dialog handler; every popup and tooltip
on its map is opened (one of each by a real mouse click or hover), and the payload must show up
as visible text, so the test cannot pass by showing nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import geopandas as gpd
import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from shapely.geometry import Point
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from api.main import create_app
from gis.platform.db import make_engine
from gis.platform.settings import Settings
from maps.analysis import cover_risk_map, coverage_map
from maps.assets import render_html
from maps.overview import overview_map
from tests.analysis.test_analysis_api import BBOX_Q, build_city
from tests.analysis.test_dark_streets import BBOX, DISTRICT, lonlat, square
from tests.analysis.test_indicators import GRID1
from tests.support.accounts import headers_for
from tests.support.browser import OfflinePage, chromium_or_skip, offline_page, serve
from tests.support.databases import seeded_database

# Each would run if a page put it into HTML or script unescaped; all are in every field.
PAYLOADS = (
    '<img src=x onerror="window.__xss=1;alert(1)">',
    '"><script>window.__xss=2;alert(2)</script>',
    "</script><script>window.__xss=3;alert(3)</script>",
    "'-alert(4)-'",
    '"-alert(5)-"',
    "`${alert(6)}`",
    "javascript:alert(7)",
    '<svg onload="window.__xss=8;alert(8)">',
)
PAYLOAD = " ".join(PAYLOADS)
# What a reader must see where a poisoned name is shown: the tag as text.
VISIBLE = PAYLOADS[0]

# table -> text columns the pages show (codes and enums are held to formats by CHECKs).
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "districts": ("name", "source"),
    "subdistricts": ("name",),
    "communities": ("name",),
    "grid_owners": ("owner_name",),
    "stations": ("name", "address", "opening_hours"),
    "roads": ("name",),
    "stall_zones": ("name", "operator"),
    "sensitive_sites": ("name",),
    "streetlights": ("owner", "maintainer"),
    "manhole_covers": ("owner", "maintainer"),
    "facilities": ("name", "address", "opening_hours", "phone"),
    "cases": ("case_no", "description"),
    "event_categories": ("name_zh",),
    "component_classes": ("name_zh", "default_owner"),
    "responsibility_rules": ("responsible_unit", "notes"),
    "deadline_rules": ("note",),
}
CENTER_XY = (50.0, 50.0)  # in grid 01, inside the approved zone, beside the cases
WEEK = {"day": "2024-05-08", "scope": DISTRICT}


def poisoned(table: str, column: str) -> str:
    """The hostile value of `table.column` (tagged, so a failure names the field)."""
    return f"{table}.{column} {PAYLOAD}"


def seed(session: Session) -> None:
    """The analysis city plus owners, facilities, zones and a site; then every field poisoned."""
    build_city(session)
    session.execute(text("""
        INSERT INTO grid_owners (grid_code, owner_name, owner_kind, phone, valid_from)
        VALUES (:g, '甲中队', 'squad', '13912345678', '2020-01-01')"""), {"g": GRID1})
    for i, kind in enumerate(("farmers_market", "public_toilet", "ev_charging", "parking",
                              "convenience_point")):
        lon, lat = lonlat(300 + 60 * i, 150)
        session.execute(text("""
            INSERT INTO facilities (name, kind, address, opening_hours, phone, geom)
            VALUES ('设施', :k, '地址', '00:00-24:00', '0531-86081234',
                    ST_SetSRID(ST_MakePoint(:x, :y), 4326))"""),
                        {"k": kind, "x": lon, "y": lat})
    slots = json.dumps([{"days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "23:59"}])
    for status, (x, y) in (("approved", (30, 30)), ("draft", (230, 30))):
        session.execute(text("""
            INSERT INTO stall_zones (name, zone_type, district_code, time_slots, capacity,
                                     operator, status, geom)
            VALUES ('摊群点', 'night_market', :d, CAST(:s AS jsonb), 10, '街道办', :st,
                    ST_GeomFromText(:g, 4326))"""),
                        {"d": DISTRICT, "s": slots, "st": status, "g": square(x, y, 40)})
    lon, lat = lonlat(600, 50)
    session.execute(text("""
        INSERT INTO sensitive_sites (name, kind, geom)
        VALUES ('小学', 'school_gate', ST_SetSRID(ST_MakePoint(:x, :y), 4326))"""),
                    {"x": lon, "y": lat})
    for table, columns in TEXT_FIELDS.items():
        for column in columns:
            # ctid keeps unique columns (case_no) unique.
            session.execute(text(f"UPDATE {table} SET {column} = :v || ' ' || "
                                 "left(md5(ctid::text), 4)"), {"v": poisoned(table, column)})


@dataclass
class Site:
    """The served app and how to sign in to it."""

    base_url: str
    staff: dict[str, str]


@pytest.fixture(scope="module")
def chromium() -> Path:
    return chromium_or_skip()


@pytest.fixture(scope="module")
def city_db(settings: Settings) -> Iterator[URL]:
    yield from seeded_database(settings, "xss", seed)


@pytest.fixture(scope="module")
def city_engine(city_db: URL) -> Iterator[Engine]:
    engine = make_engine(city_db)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def site(settings: Settings, city_db: URL, city_engine: Engine) -> Iterator[Site]:
    """The app on the poisoned city, with one more poisoned facility imported through the API."""
    copy = settings.model_copy(deep=True)
    copy.db.url = city_db.render_as_string(hide_password=False)
    copy.city.bbox = BBOX
    lon, lat = lonlat(*CENTER_XY)
    copy.city.center = (lat, lon)
    staff = headers_for(city_engine, "admin")
    with serve(create_app(copy)) as url:
        lon, lat = lonlat(600, 150)
        upload = {"type": "FeatureCollection", "features": [{
            "type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"name": f"import.name {PAYLOAD}", "kind": "parking",
                           "address": f"import.address {PAYLOAD}",
                           "opening_hours": "00:00-24:00"}}]}
        r = httpx.post(f"{url}/layers/facilities/import", headers=staff, timeout=60,
                       files={"file": ("hostile.geojson", json.dumps(upload), "application/json")})
        assert r.status_code == 200, r.text
        yield Site(url, staff)


# ---- what every page is checked for --------------------------------------------------------

@dataclass
class Visit:
    """A page under test: dialogs it opened, texts shown in its popups and tooltips."""

    browser: OfflinePage
    dialogs: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)

    @property
    def page(self) -> Any:
        return self.browser.page

    def check(self, url: str, *, payload_shown: bool = True) -> None:
        """No dialog, no flag, no script error; the payload visible as text somewhere."""
        assert self.dialogs == [], f"{url}: a payload ran: dialogs {self.dialogs}"
        flag = self.page.evaluate("() => typeof window.__xss === 'undefined' ? null : "
                                  "String(window.__xss)")
        assert flag is None, f"{url}: a payload ran: window.__xss = {flag}"
        errors = [e for e in self.browser.errors if "favicon" not in e]
        assert errors == [], f"{url}: script errors {errors}"
        if payload_shown:
            body = self.page.evaluate("() => document.body.innerText")
            seen = [t for t in [body, *self.shown] if VISIBLE in t]
            assert seen, f"{url}: the poisoned text is not shown anywhere as text"


@pytest.fixture
def visit(chromium: Path, site: Site) -> Iterator[Any]:
    """visit(path, staff=True): open `path` in a fresh browser (closing the last one)."""
    current: list[Any] = []

    def close() -> None:
        while current:
            current.pop().__exit__(None, None, None)

    def go(path: str, *, staff: bool = True, wait: str | None = None) -> Visit:
        close()
        context = offline_page(chromium, extra_http_headers=site.staff if staff else {})
        v = Visit(context.__enter__())
        current.append(context)

        def on_dialog(dialog: Any) -> None:
            v.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        v.page.on("dialog", on_dialog)
        response = v.page.goto(f"{site.base_url}{path}", wait_until="load", timeout=180_000)
        assert response is not None and response.status == 200, path
        if wait:
            try:
                v.page.wait_for_function(wait, timeout=60_000)
            except PlaywrightTimeout:
                pytest.fail(f"{path}: the page script never got ready; dialogs {v.dialogs}, "
                            f"errors {v.browser.errors}")
        return v

    try:
        yield go
    finally:
        close()


# Fire click and mouseover on every layer on the map: popups and tooltips bound to a layer or
# its group open as they would for a user, and their rendered text is collected.
OPEN_ALL = """async () => {
    const map = Object.values(window).find(v => v instanceof L.Map);
    document.querySelectorAll('.leaflet-control-layers-overlays input').forEach(i => {
        if (!i.checked) { i.click(); }
    });
    const leaves = [];
    map.eachLayer(l => { if (!(l instanceof L.LayerGroup) && !(l instanceof L.TileLayer)) {
        leaves.push(l); } });
    const popups = [], tooltips = [];
    const onPopup = e => popups.push(e.popup.getElement().innerText);
    const onTooltip = e => tooltips.push(e.tooltip.getElement().innerText);
    map.on('popupopen', onPopup);
    map.on('tooltipopen', onTooltip);
    for (const l of leaves) {
        let at;
        try {
            at = l.getLatLng ? l.getLatLng() : l.getBounds().getCenter();
        } catch (e) { continue; }
        l.fire('click', {latlng: at}, true);
        map.closePopup();
        l.fire('mouseover', {latlng: at}, true);
        l.fire('mouseout', {latlng: at}, true);
    }
    map.off('popupopen', onPopup);
    map.off('tooltipopen', onTooltip);
    await new Promise(r => setTimeout(r, 300));  // let an onerror of a broken <img> fire
    return {texts: popups.concat(tooltips), popups: popups.length, tooltips: tooltips.length,
            layers: leaves.length};
}"""

MAP_READY = "() => window.L && Object.values(window).some(v => v instanceof L.Map)"


def open_everything(v: Visit) -> dict[str, Any]:
    """Open every popup and tooltip of the page's map; their texts go to `v.shown`."""
    result: dict[str, Any] = v.page.evaluate(OPEN_ALL)
    v.shown.extend(result["texts"])
    return result


def screen_point(v: Visit, lon: float, lat: float, handle: str = "") -> tuple[float, float]:
    """Page pixel of (lon, lat) on the map."""
    find = handle or "Object.values(window).find(v => v instanceof L.Map)"
    x, y = v.page.evaluate(f"""([lon, lat]) => {{
        const map = {find};
        const p = map.latLngToContainerPoint([lat, lon]);
        const r = map.getContainer().getBoundingClientRect();
        return [r.left + p.x, r.top + p.y];
    }}""", [lon, lat])
    return x, y


# ---- rendering, without a browser -----------------------------------------------------------

def test_map_functions_never_put_a_payload_into_the_page_raw() -> None:
    """Data reaches a page only escaped (HTML) or as JSON with <, >, & and ' escaped."""
    hostile = f"x {PAYLOAD}"
    at = Point(117.0, 36.3)
    zones = gpd.GeoDataFrame({"id": [1], "name": [hostile], "zone_type": ["night_market"],
                              "capacity": [10], "operator": [hostile], "status": ["draft"]},
                             geometry=[at.buffer(0.001)], crs=4326)
    stations = gpd.GeoDataFrame({"id": [1], "name": [hostile], "address": [hostile]},
                                geometry=[at], crs=4326)
    cells = gpd.GeoDataFrame({"grid_code": ["37990100100101"], "distance_m": [10.0],
                              "station_name": [hostile], "method": ["straight"],
                              "covered": [True]}, geometry=[at.buffer(0.001)], crs=4326)
    risks = gpd.GeoDataFrame({"code": ["3799010102000001"], "class_name": [hostile],
                              "state": ["missing"], "risk": ["high"], "owner": [hostile],
                              "hours": [5.0], "open_case_no": [hostile]},
                             geometry=[at], crs=4326).rename_geometry("geom")
    center = (36.3, 117.0)
    pages = {
        "overview": overview_map({"stall_zones": zones, "stations": stations}, center=center,
                                 title=hostile),
        "coverage": coverage_map(cells, center=center, title=hostile, threshold_m=500,
                                 stations=stations),
        "cover-risk": cover_risk_map(risks, center=center, title=hostile),
    }
    for name, m in pages.items():
        html = render_html(m, title=hostile)
        # Every payload with a tag: as JSON or HTML text none of them can stay verbatim.
        for payload in (p for p in PAYLOADS if "<" in p):
            assert payload not in html, f"{name}: {payload!r} is in the page source raw"


# ---- pages ---------------------------------------------------------------------------------

@pytest.mark.browser
def test_overview_map_popups_and_tooltips_show_payloads_as_text(visit) -> None:
    v = visit("/map", wait=MAP_READY)
    # Embedded layers (stations, stall zones, facilities): popups and tooltips.
    opened = open_everything(v)
    assert opened["popups"] >= 9 and opened["tooltips"] >= 9, opened
    # The rest comes from vector tiles: the base map's labels (roads, communities, districts)
    # are DOM text placed by the page; read them at a few zooms over the poisoned city.
    lon, lat = lonlat(500, 100)
    for zoom in (14, 16, 17):
        v.page.evaluate("([lon, lat, z]) => { const m = Object.values(window).find("
                        "x => x instanceof L.Map); m.setView([lat, lon], z, {animate: false}); }",
                        [lon, lat, zoom])
        try:
            v.page.wait_for_function(
                "() => [...document.querySelectorAll('.cg-label')].some("
                "e => e.innerText.includes('.name'))", timeout=20_000)
        except Exception:  # a zoom without labels is fine: the union is checked
            pass
        v.shown.extend(v.page.evaluate(
            "() => [...document.querySelectorAll('.cg-label')].map(e => e.innerText)"))
    v.check("/map")
    texts = "\n".join(v.shown)
    for tag in ("stall_zones.name", "stall_zones.operator", "facilities.name",
                "stations.name", "roads.name"):
        assert f"{tag} {VISIBLE}" in texts, f"{tag} not shown as text on /map"
    assert texts.count("stall_zones.name") >= 4  # both zones: popup and tooltip each


@pytest.mark.browser
def test_planner_zone_popup_and_tooltip_by_mouse(visit) -> None:
    v = visit("/planner", wait="() => window.cgPlanner")
    # A real hover and click on the draft zone (SVG paths): tooltip, then popup.
    lon, lat = lonlat(250, 50)
    v.page.evaluate("([lon, lat]) => cgPlanner.map.setView([lat, lon], 18, {animate: false})",
                    [lon, lat])
    x, y = screen_point(v, lon, lat, "cgPlanner.map")
    v.page.mouse.move(x, y)
    tooltip = v.page.wait_for_selector(".leaflet-tooltip", timeout=10_000)
    assert f"stall_zones.name {VISIBLE}" in tooltip.inner_text()
    v.page.mouse.click(x, y)
    popup = v.page.wait_for_selector(".leaflet-popup-content", timeout=10_000)
    shown = popup.inner_text()
    assert f"stall_zones.operator {VISIBLE}" in shown and "草稿" in shown, shown
    v.shown.append(shown)
    v.page.evaluate("() => cgPlanner.map.closePopup()")
    opened = open_everything(v)
    assert opened["popups"] >= 2 and opened["tooltips"] >= 5, opened
    texts = "\n".join(v.shown)
    for tag in ("roads.name", "sensitive_sites.name"):
        assert f"{tag} {VISIBLE}" in texts, f"{tag} not shown as text on /planner"
    # The time picker lists the zones open at a time, by name.
    v.page.fill("#cg-at", "2024-05-08T12:00")
    v.page.check("#cg-drafts")
    v.page.click("#cg-at-go")
    v.page.wait_for_selector("#cg-at-result[data-count]", timeout=30_000)
    open_everything(v)
    v.check("/planner")


@pytest.mark.browser
def test_dispatcher_route_panel_lists_and_case_popup(visit) -> None:
    v = visit("/dispatch", wait="() => window.cgDispatch")
    v.page.wait_for_selector("#cg-open-list[data-count]", timeout=60_000)
    lon, lat = lonlat(*CENTER_XY)
    v.page.fill("#cg-x", f"{lon:.7f}")
    v.page.fill("#cg-y", f"{lat:.7f}")
    v.page.select_option("#cg-crs", "wgs84")
    v.page.click("#cg-locate")
    v.page.wait_for_selector("#cg-route[data-highlighted]", timeout=60_000)
    v.page.wait_for_selector("#cg-nearby[data-count]", timeout=60_000)
    route = v.page.inner_text("#cg-route")
    for tag in ("grid_owners.owner_name", "stations.name", "stall_zones.name",
                "stall_zones.operator", "communities.name"):
        assert f"{tag} {VISIBLE}" in route, f"{tag} not in the route panel: {route}"
    assert f"cases.case_no {VISIBLE}" in v.page.inner_text("#cg-nearby")
    assert f"cases.case_no {VISIBLE}" in v.page.inner_text("#cg-open-list")
    # Opening a listed case shows its description in a popup.
    v.page.locator("#cg-open-list li").first.click()
    popup = v.page.wait_for_selector(".leaflet-popup-content", timeout=30_000)
    shown = popup.inner_text()
    assert f"cases.description {VISIBLE}" in shown, shown
    v.shown.append(shown)
    v.page.evaluate("() => cgDispatch.map.closePopup()")
    open_everything(v)
    v.check("/dispatch")


@pytest.mark.browser
def test_public_map_popups_and_nearest_list(visit) -> None:
    v = visit("/public", staff=False, wait="() => window.cgPublic")
    # A real click on a facility's marker at street level (no clustering from zoom 18).
    lon, lat = lonlat(300, 150)
    v.page.evaluate("""([lon, lat]) => {
        const map = Object.values(window).find(v => v instanceof L.Map);
        map.setView([lat, lon], 19, {animate: false});
    }""", [lon, lat])
    v.page.wait_for_timeout(500)
    x, y = screen_point(v, lon, lat)
    v.page.mouse.click(x, y)
    popup = v.page.wait_for_selector(".leaflet-popup-content", timeout=10_000)
    shown = popup.inner_text()
    assert f"facilities.name {VISIBLE}" in shown and f"facilities.address {VISIBLE}" in shown
    v.shown.append(shown)
    # Every marker's popup as the page builds it (markers inside the cluster are off the map).
    texts = v.page.evaluate("""() => {
        const map = Object.values(window).find(v => v instanceof L.Map);
        const out = [];
        cgPublic.cluster.getLayers().forEach(m => {
            const popup = L.popup().setLatLng(m.getLatLng()).setContent(m.getPopup().getContent());
            popup.openOn(map);
            out.push(popup.getElement().innerText);
            map.closePopup();
        });
        return out;
    }""")
    v.shown.extend(texts)
    joined = "\n".join(texts)
    for tag in ("stations.name", "stall_zones.name", "stall_zones.operator", "import.name",
                "facilities.opening_hours"):
        assert f"{tag} {VISIBLE}" in joined, f"{tag} not shown on /public"
    open_everything(v)
    lon, lat = lonlat(*CENTER_XY)
    v.page.select_option("#cg-near-kind", "parking")
    v.page.evaluate("([lon, lat]) => cgPublic.lookup(lon, lat, 'wgs84')", [lon, lat])
    v.page.wait_for_function("() => document.querySelector('#cg-results li') || "
                             "/失败|错误|没有/.test(document.querySelector('#cg-status').textContent)",
                             timeout=30_000)
    assert v.page.locator("#cg-results li").count(), v.page.inner_text("#cg-status")
    assert f"import.name {VISIBLE}" in v.page.inner_text("#cg-results")
    v.check("/public")


@pytest.mark.browser
@pytest.mark.parametrize("path,tags", [
    (f"/analysis/map/dark-streets?bbox={BBOX_Q}&step_m=4", ("roads.name",)),
    (f"/analysis/map/coverage-gaps?bbox={BBOX_Q}&threshold_m=500", ("stations.name",)),
    (f"/analysis/map/hotspots?bbox={BBOX_Q}&end=2024-05-13T00:00:00%2B08:00&days=7"
     "&resolution=10", ()),
    (f"/analysis/map/cover-risk?bbox={BBOX_Q}",
     ("manhole_covers.owner", "component_classes.name_zh")),
])
def test_analysis_maps_tooltips(visit, path: str, tags: tuple[str, ...]) -> None:
    v = visit(path, wait=MAP_READY)
    opened = open_everything(v)
    # The results are drawn from tiles: every loaded feature's popup is opened in turn.
    v.page.wait_for_function("() => window.cgAnalysis && cgAnalysis.tiles() >= 1",
                             timeout=60_000)
    v.page.wait_for_load_state("networkidle", timeout=60_000)
    popups = v.page.evaluate("cgAnalysis.openAll()")
    v.shown.extend(popups)
    v.check(path, payload_shown=bool(tags))
    assert opened["layers"] + len(popups) > 0, opened
    texts = "\n".join(v.shown)
    for tag in tags:
        assert f"{tag} {VISIBLE}" in texts, f"{tag} not shown as text on {path}"


@pytest.mark.browser
@pytest.mark.parametrize("period", ["daily", "weekly", "monthly"])
def test_reports(visit, period: str) -> None:
    path = f"/reports/{period}?day={WEEK['day']}&scope={WEEK['scope']}"
    v = visit(path)
    body = v.page.inner_text("body")
    for tag in ("districts.name", "subdistricts.name", "event_categories.name_zh"):
        assert f"{tag} {VISIBLE}" in body, f"{tag} not in the {period} report"
    v.check(path)


@pytest.mark.browser
def test_login_and_index_pages_escape_the_query(visit) -> None:
    for target in PAYLOADS:
        path = f"/login?next={quote(target, safe='')}"
        v = visit(path, staff=False)
        assert v.page.inner_text("h2") == "工作人员登录"
        v.check(path, payload_shown=False)
        # The form must not send a signed-in user to a javascript: or foreign URL.
        assert not v.page.get_attribute("input[name=next]", "value").lower().startswith(
            ("javascript", "//", "http"))
    v = visit("/", staff=False)
    v.check("/", payload_shown=False)


@pytest.mark.browser
@pytest.mark.parametrize("collection", ["facilities", "stations", "stall_zones", "roads",
                                        "communities", "subdistricts", "districts"])
def test_ogc_html_pages(visit, site: Site, collection: str) -> None:
    base = f"/ogc/collections/{collection}"
    items = visit(f"{base}/items?f=html&limit=50", staff=False)
    table = items.page.inner_text("body")
    assert VISIBLE in table, f"{collection} items page shows no poisoned text"
    items.check(f"{base}/items?f=html")
    r = httpx.get(f"{site.base_url}{base}/items?limit=1", timeout=30)
    feature_id = r.json()["features"][0]["id"]
    one = visit(f"{base}/items/{quote(str(feature_id), safe='')}?f=html", staff=False)
    assert VISIBLE in one.page.inner_text("body")
    one.check(f"{base}/items/{feature_id}?f=html")
    for path in ("/ogc/collections?f=html", f"{base}?f=html"):
        visit(path, staff=False).check(path, payload_shown=False)
