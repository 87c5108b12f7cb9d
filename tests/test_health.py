from fastapi.testclient import TestClient

from api.main import create_app


def test_health_reports_postgis_and_revision(test_settings, engine):
    with TestClient(create_app(test_settings)) as client:
        response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["postgis"].startswith("3.")
    assert body["schema_revision"] == "0003"
