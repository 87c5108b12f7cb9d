"""Domain errors to HTTP responses, in one table."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gis.errors import (
    CityGridError,
    ConflictError,
    CrsMismatchError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    OutsideCityError,
)

logger = logging.getLogger("citygrid.api")

# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: list[tuple[type[CityGridError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (OutsideCityError, 422),
    (CrsMismatchError, 422),
    (InvalidInputError, 422),
    (DatabaseUnavailableError, 503),
    (CityGridError, 400),
]


def status_for(error: CityGridError) -> int:
    """HTTP status of a domain error."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return 400


def install_error_handlers(app: FastAPI) -> None:
    """Register the domain-error handler and a generic, logged 500."""

    async def domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CityGridError)
        return JSONResponse({"detail": str(exc)}, status_code=status_for(exc))

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    app.add_exception_handler(CityGridError, domain_error)
    app.add_exception_handler(Exception, unexpected_error)
