"""The first view's base-map tiles are rendered into the tile cache after startup.

api/tile_warmup.py fills the tile cache of api/routes/tiles.py with the /map first view's
base tiles, under the same keys: a request for one, by city staff or a grid owner (base tiles
are the same for everyone), is then answered without rendering it again; other tiles render.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.main import create_app
from api.routes import tiles as tile_routes
from api.tile_warmup import city_extent, first_view_tiles, fitted_view_tiles
from gis.platform.settings import Settings
from tests.support.accounts import headers_for


def test_first_view_tiles_hold_the_centre_at_every_size() -> None:
    center = (36.665, 117.07)
    desktop = first_view_tiles(center, screen=(1440, 900))
    phone = first_view_tiles(center, screen=(390, 844))
    assert {t.z for t in desktop} == {12}  # map zoom 13 drawn with 512 px tiles
    assert set(phone) <= set(desktop) <= set(first_view_tiles(center))
    assert 2 <= len(phone) <= 4 and 6 <= len(desktop) <= 12
    assert desktop[0] == phone[0]  # the centre's tile first


def test_warmed_tiles_are_served_without_rendering(test_settings: Settings, engine: Engine,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    settings = test_settings.model_copy(deep=True)
    settings.staff_map.warm_tiles = True
    app = create_app(settings)
    staff = headers_for(engine, "dispatcher")
    with TestClient(app) as client:
        thread, _stop = app.state.tile_warmup
        thread.join(timeout=60)
        assert not thread.is_alive()
        rendered: list[tuple[int, int, int]] = []

        def counting(session, tile, *, px=256):  # type: ignore[no-untyped-def]
            rendered.append((tile.z, tile.x, tile.y))
            return b""

        monkeypatch.setattr(tile_routes, "basemap_tile", counting)
        warm = first_view_tiles(settings.city.center)
        for tile in warm:
            answer = client.get(f"/tiles/basemap/{tile.z}/{tile.x}/{tile.y}.pbf?px=512",
                                headers=staff)
            assert answer.status_code == 200
        assert rendered == []
        # A grid owner's first view finds the same warmed tiles; another tile is rendered.
        owner = headers_for(engine, "grid_owner", owner_name="网格员（预热测试）")
        for tile in warm:
            client.get(f"/tiles/basemap/{tile.z}/{tile.x}/{tile.y}.pbf?px=512", headers=owner)
        assert rendered == []
        far = warm[0]
        client.get(f"/tiles/basemap/{far.z}/{far.x + 20}/{far.y}.pbf?px=512", headers=owner)
        assert rendered == [(far.z, far.x + 20, far.y)]


def test_a_base_tile_is_the_same_for_every_viewer(demo_settings: Settings,
                                                   demo_engine: Engine) -> None:
    # What sharing one cache entry per base tile rests on: no role sees another base map.
    settings = demo_settings.model_copy(deep=True)
    settings.staff_map.warm_tiles = False
    tile = first_view_tiles(settings.city.center)[0]
    url = f"/tiles/basemap/{tile.z}/{tile.x}/{tile.y}.pbf?px=512"
    bodies = []
    for headers in (headers_for(demo_engine, "dispatcher"),
                    headers_for(demo_engine, "grid_owner", owner_name="网格员（底图测试）")):
        app = create_app(settings)  # a fresh tile cache: each body rendered for its viewer
        with TestClient(app) as client:
            answer = client.get(url, headers=headers)
            assert answer.status_code == 200
            bodies.append(answer.content)
    assert bodies[0] == bodies[1] and len(bodies[0]) > 100


def test_warm_up_can_be_turned_off(test_settings: Settings) -> None:
    settings = test_settings.model_copy(deep=True)
    settings.staff_map.warm_tiles = False
    app = create_app(settings)
    with TestClient(app):
        time.sleep(0.1)
        assert getattr(app.state, "tile_warmup", None) is None


def test_the_analysis_maps_fitted_views_are_warmed_too(demo_settings: Settings,
                                                       demo_engine: Engine,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = demo_settings.model_copy(deep=True)
    settings.staff_map.warm_tiles = True
    app = create_app(settings)
    with TestClient(app) as client:
        thread, _stop = app.state.tile_warmup
        thread.join(timeout=120)
        assert not thread.is_alive()
        extent = city_extent(app)
        assert extent is not None
        fitted = fitted_view_tiles(extent)
        assert {t.z for t in fitted} == {9, 10, 11}
        rendered: list[tuple[int, int, int]] = []
        monkeypatch.setattr(tile_routes, "basemap_tile",
                            lambda session, tile, *, px=256: rendered.append(
                                (tile.z, tile.x, tile.y)) or b"")
        analyst = headers_for(demo_engine, "analyst")
        for tile in fitted:
            assert client.get(f"/tiles/basemap/{tile.z}/{tile.x}/{tile.y}.pbf?px=512",
                              headers=analyst).status_code == 200
        assert rendered == []
