from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from api.main import create_app
from gis.migrate import alembic_config


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
