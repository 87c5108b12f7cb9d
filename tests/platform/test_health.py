from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from api.main import create_app
from gis.platform.db import make_engine, session_factory
from gis.platform.migrate import alembic_config
from tests.support.accounts import headers_for


def test_anonymous_health_says_only_up(test_settings, engine):
    with TestClient(create_app(test_settings)) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}  # no PostGIS / PostgreSQL build, no revision
    assert "postgis" not in response.text.lower() and "/" not in response.text


def test_anonymous_health_says_down_without_details(test_settings, engine):
    broken = test_settings.model_copy(deep=True)
    broken.db.url = "postgresql+psycopg2://nobody:secret@127.0.0.1:1/nowhere"
    app = create_app(broken)
    # No lifespan (it would open the OGC pool on the dead database): the engine alone.
    app.state.sessionmaker = session_factory(make_engine(broken.db.url))
    response = TestClient(app).get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "down"}
    assert "nowhere" not in response.text and "127.0.0.1" not in response.text


def test_staff_health_details_report_postgis_and_head_revision(test_settings, engine):
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with TestClient(create_app(test_settings)) as client:
        assert client.get("/health/details").status_code == 401
        response = client.get("/health/details", headers=headers_for(engine, "analyst"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["postgis"].startswith("3.")
    assert body["schema_revision"] == head


def test_unknown_route_is_404(test_settings, engine):
    with TestClient(create_app(test_settings)) as client:
        assert client.get("/no-such-page").status_code == 404


def test_api_docs_load_swagger_ui_from_the_app(test_settings, engine):
    with TestClient(create_app(test_settings)) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert "cdn." not in page.text and "https://" not in page.text
        assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
        assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN
