"""Domain errors to HTTP responses, in one table."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from gis.errors import (
    AuthenticationError,
    CityGridError,
    ConflictError,
    CrsMismatchError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    OutsideCityError,
    PermissionDeniedError,
)

logger = logging.getLogger("citygrid.api")

# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: list[tuple[type[CityGridError], int]] = [
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
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

    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CityGridError)
        if isinstance(exc, AuthenticationError):
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                # A person opening a staff page is sent to sign in, then back.
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            return JSONResponse({"detail": str(exc)}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return JSONResponse({"detail": str(exc)}, status_code=status_for(exc))

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    app.add_exception_handler(CityGridError, domain_error)
    app.add_exception_handler(Exception, unexpected_error)
