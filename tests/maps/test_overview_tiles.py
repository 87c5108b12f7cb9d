"""The tiled overview without a database: base map choice, GCJ-02 shift, page contents, CSP."""

from __future__ import annotations

import json
import re

import pytest

from api.security_headers import html_csp
from gis.geo.coords import wgs84_to_gcj02
from gis.platform.settings import Settings, StaffMapSettings
from maps.assets import render_html
from maps.basemaps import BASEMAP_TILE_URL, staff_base_for
from maps.overview import overview_map
from maps.overview_tiles import OverviewTiles, default_tiled_layers

CENTER = (36.665, 117.07)
MIRROR = "http://tdt.intranet/vec_w/{z}/{x}/{y}.png"


def page_config(html: str) -> dict:
    found = re.search(r"var CONFIG = (\{.*?\});\nvar EMBEDDED", html, re.S)
    assert found, "no CONFIG in the page"
    return json.loads(found.group(1))


def tiled_page(base) -> str:
    tiles = OverviewTiles(base=base, layers=default_tiled_layers(grid_zoom=15, point_zoom=17,
                                                                 case_zoom=16))
    return render_html(overview_map({}, center=CENTER, tiles=tiles), title="综合地图")


def test_default_is_the_city_base_map_from_the_apps_tiles() -> None:
    base = staff_base_for(StaffMapSettings(), center=CENTER)
    assert base.kind == "city" and base.url == BASEMAP_TILE_URL and base.shift is None
    html = tiled_page(base)
    config = page_config(html)
    assert config["base"]["url"] == "/tiles/basemap/{z}/{x}/{y}.pbf"
    assert [layer["id"] for layer in config["layers"]] == [
        "grid_cells", "roads", "streetlights", "manhole_covers", "cases"]
    assert "/static/vendor/leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js" in html
    assert len(html.encode()) < 100_000  # no features embedded


def test_amap_mirror_is_shifted_by_the_gcj02_offset_at_the_centre() -> None:
    settings = StaffMapSettings(tile_url="http://amap.intranet/{z}/{x}/{y}.png",
                                tile_datum="gcj02")
    base = staff_base_for(settings, center=CENTER)
    lon, lat = wgs84_to_gcj02(CENTER[1], CENTER[0])
    assert base.kind == "mirror" and base.shift is not None
    assert base.shift == pytest.approx((float(lon) - CENTER[1], float(lat) - CENTER[0]))
    assert 0.003 < base.shift[0] < 0.01 and 0 < base.shift[1] < 0.005  # hundreds of metres
    assert page_config(tiled_page(base))["base"]["shift"] == pytest.approx(list(base.shift))


def test_tianditu_mirror_is_not_shifted_and_its_host_is_allowed_by_the_csp() -> None:
    settings = Settings()
    settings.staff_map = StaffMapSettings(tile_url=MIRROR, tile_labels_url=MIRROR.replace(
        "vec_w", "cva_w"))
    base = staff_base_for(settings.staff_map, center=CENTER)
    assert base.shift is None and base.labels_url
    config = page_config(tiled_page(base))["base"]
    assert config["kind"] == "mirror" and config["url"] == MIRROR
    assert "http://tdt.intranet" in html_csp(settings)
    assert "tdt.intranet" not in html_csp(Settings())


@pytest.mark.parametrize("url", ["http://tiles/{z}/{x}.png", "tiles.png"])
def test_a_mirror_url_needs_z_x_and_y(url: str) -> None:
    with pytest.raises(ValueError, match="needs"):
        StaffMapSettings(tile_url=url)
