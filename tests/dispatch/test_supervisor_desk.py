"""Supervisors are offered the desk (maps/shell.py): its list of new cases answers them.

The desk reads GET /cases/recent at start; for a supervisor it was a 403, a console error on
every visit (bench/pages.py, supervisor /dispatch). GET /cases lists every case to any staff
member already, so the new-cases list shows a supervisor nothing new; roles the desk is not
offered to (analyst, planner) are still refused.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from api.main import create_app
from gis.platform.settings import Settings
from tests.support.accounts import headers_for


@pytest.mark.parametrize("role,status", [("supervisor", 200), ("dispatcher", 200),
                                         ("analyst", 403), ("planner", 403)])
def test_recent_cases_by_role(test_settings: Settings, engine: Engine, role: str,
                              status: int) -> None:
    with TestClient(create_app(test_settings)) as client:
        answer = client.get("/cases/recent", headers=headers_for(engine, role))
    assert answer.status_code == status, answer.text
