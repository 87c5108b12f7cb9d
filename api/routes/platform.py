"""Health: anonymous callers learn up or down; signed-in staff get PostGIS and schema details.

Versions and build details help an attacker pick exploits, so the anonymous answer says
nothing else; monitoring needs no more than the status code.
"""

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.auth import StaffDep
from api.deps import SessionDep
from gis.platform.db import postgis_version
from gis.platform.migrate import current_revision

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Up or down, nothing more."""

    status: Literal["ok", "down"]


class HealthDetails(BaseModel):
    """Health report for staff."""

    status: str
    postgis: str
    schema_revision: str | None


@router.get("/health", response_model=Health, summary="Up or down (anonymous)",
            responses={503: {"model": Health, "description": "The database is unreachable"}})
def health(request: Request) -> Health | JSONResponse:
    """`ok` when the app can reach its database, else 503 `down`."""
    try:
        with request.app.state.sessionmaker() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse({"status": "down"}, status_code=503, headers={"Retry-After": "5"})
    return Health(status="ok")


@router.get("/health/details", response_model=HealthDetails,
            summary="Database, PostGIS and schema revision (staff)")
def health_details(session: SessionDep, user: StaffDep) -> HealthDetails:
    """Report the PostGIS version and the schema revision."""
    version = postgis_version(session)
    revision = current_revision(session.get_bind())  # type: ignore[arg-type]
    return HealthDetails(status="ok", postgis=version, schema_revision=revision)
