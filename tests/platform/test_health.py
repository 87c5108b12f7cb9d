from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from api.main import create_app
from gis.platform.migrate import alembic_config


def test_health_reports_postgis_and_head_revision(test_settings, engine):
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with TestClient(create_app(test_settings)) as client:
        response = client.get("/health")
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
