"""Health: is the database there, and which PostGIS."""

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import SessionDep
from gis.platform.db import postgis_version
from gis.platform.migrate import current_revision

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Health report."""

    status: str
    postgis: str
    schema_revision: str | None


@router.get("/health", response_model=Health, summary="Database and PostGIS status")
def health(session: SessionDep) -> Health:
    """Report the PostGIS version and the schema revision."""
    version = postgis_version(session)
    revision = current_revision(session.get_bind())  # type: ignore[arg-type]
    return Health(status="ok", postgis=version, schema_revision=revision)
