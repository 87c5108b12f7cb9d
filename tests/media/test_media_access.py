"""Who sees which photos, over the real database roles: grid owners' row-level security."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.main import create_app
from gis.dispatch.cases import create_case
from gis.platform.db import make_engine, transaction
from tests.dispatch.test_routing import NEW_OWNER, build_city
from tests.support.accounts import headers_for
from tests.support.databases import seeded_database
from tests.support.photos import png

OTHER_OWNER = "钱网格员"  # holds grid B01, not the case's A04


@pytest.fixture(scope="module")
def city(settings, tmp_path_factory):
    for url in seeded_database(settings, "media_rls", build_city):
        engine = make_engine(url)
        copy = settings.model_copy(deep=True)
        copy.db.url = url.render_as_string(hide_password=False)
        copy.media.dir = tmp_path_factory.mktemp("media")
        yield engine, copy
        engine.dispose()


def test_grid_owner_sees_only_photos_of_their_grids(city):
    engine, settings = city
    with transaction(engine) as session:
        case = create_case(session, category_type="event", category_code="0505",
                           channel="patrol", x=117.0315, y=36.6605, actor="测试",
                           reported_at=dt.datetime.now(dt.UTC))
    dispatcher = headers_for(engine, "dispatcher")
    own = headers_for(engine, "grid_owner", owner_name=NEW_OWNER)
    other = headers_for(engine, "grid_owner", owner_name=OTHER_OWNER)
    with TestClient(create_app(settings)) as client:
        def upload(headers, stage, color):
            return client.post(f"/cases/{case.id}/media", headers=headers, data={"stage": stage},
                               files={"file": ("p.png", png(color=color), "image/png")})

        first = upload(dispatcher, "report", "red")
        assert first.status_code == 201, first.text
        url = first.json()["url"]
        assert client.get(url, headers=own).status_code == 200
        assert len(client.get(f"/cases/{case.id}/media", headers=own).json()) == 1
        assert upload(own, "report", "blue").status_code == 201
        assert upload(own, "verification", "green").status_code == 403  # never their own check
        # Another grid's owner: the case and its photos do not exist for them.
        assert client.get(f"/cases/{case.id}/media", headers=other).status_code == 404
        assert client.get(url, headers=other).status_code == 404
        assert client.get(first.json()["thumb_url"], headers=other).status_code == 404
        assert upload(other, "report", "black").status_code == 404
    with engine.connect() as conn:
        actors = conn.execute(text(
            "SELECT actor_role FROM audit_log WHERE table_name = 'case_media' ORDER BY id")
        ).scalars().all()
    assert actors == ["dispatcher", "grid_owner"]
