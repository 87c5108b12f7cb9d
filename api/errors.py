"""Domain errors to HTTP responses, in one table."""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, InterfaceError, OperationalError

from api.errors_zh import ZH_BY_STATUS, known_message_zh, message_zh
from gis.platform.errors import (
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


# The Chinese message of a domain error, most specific class first, unless the error carries
# its own `message_zh`; the English `detail` names the value for logs and API clients.
ZH_BY_ERROR: list[tuple[type[CityGridError], str]] = [
    (OutsideCityError, "坐标不在本市范围内"),
    (CrsMismatchError, "坐标系不一致，请确认数据的坐标系"),
    (AuthenticationError, ZH_BY_STATUS[401]),
    (PermissionDeniedError, ZH_BY_STATUS[403]),
    (NotFoundError, "未找到所请求的数据"),
    (ConflictError, ZH_BY_STATUS[409]),
    (DatabaseUnavailableError, ZH_BY_STATUS[503]),
]


# Documented on every operation (409 on writes only), so clients and the fuzzer know the shape.
ERROR_STATUSES: dict[int, str] = {
    400: "Bad request: the message names the value",
    401: "Not signed in, or the token is wrong, expired or revoked",
    403: "Signed in with a role that may not do this",
    404: "No such layer, feature, case or zone",
    409: "Clashes with the current state (e.g. an older version, a retired zone)",
    413: "Request body larger than the limit (named in the message)",
    422: "Invalid input: a list of field errors, or a message naming the problem",
    503: "The database cannot be reached",
}


class ErrorOut(BaseModel):
    """An error: `detail` names the problem; refused zones add `violations` or `repair`."""

    model_config = ConfigDict(extra="allow")

    detail: str | list[dict[str, Any]] = Field(
        description="the problem; for request validation, one entry per bad field "
                    "(loc, msg, type)")
    message_zh: str | None = Field(
        default=None, description="the problem in Chinese, for people: pages show this one")


def zh_for(error: CityGridError) -> str:
    """The Chinese message of a domain error."""
    own = getattr(error, "message_zh", None)
    if isinstance(own, str) and own:
        return own
    known = known_message_zh(str(error))
    if known:
        return known
    for cls, zh in ZH_BY_ERROR:
        if isinstance(error, cls):
            return zh
    return message_zh(status_for(error), str(error))


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
            return JSONResponse({"detail": str(exc), "message_zh": zh_for(exc)},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return JSONResponse({"detail": str(exc), "message_zh": zh_for(exc)},
                            status_code=status_for(exc))

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error"}, status_code=500)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's own handler, except that NaN / Infinity echoed back as `input` (json.loads
        # reads them) are sent as strings: strict JSON has no such numbers and rendering
        # them failed with a 500.
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)

    async def data_error(request: Request, exc: Exception) -> JSONResponse:
        # The database refused a value it was given as a bound parameter (a time zone offset
        # past ±15:59, a number out of its column's range): the client's input, so a 422
        # naming it; the transaction is rolled back with the session. No SQL text is sent.
        assert isinstance(exc, DataError)
        diag = getattr(exc.orig, "diag", None)
        message = getattr(diag, "message_primary", None) or "a value is out of range"
        logger.info("database refused a value on %s %s: %s", request.method, request.url.path,
                    message)
        return JSONResponse({"detail": f"value refused by the database: {message}"},
                            status_code=422)

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        # The server is restarting or unreachable: a 503 tells clients and load balancers to
        # retry; the pool's pre-ping reconnects on the next request once it is back.
        logger.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                       str(exc).splitlines()[0])
        return JSONResponse({"detail": "the database is unavailable; try again shortly"},
                            status_code=503, headers={"Retry-After": "5"})

    app.add_exception_handler(CityGridError, domain_error)
    app.add_exception_handler(DataError, data_error)
    app.add_exception_handler(OperationalError, database_down)
    app.add_exception_handler(InterfaceError, database_down)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by its name ('nan', 'inf', '-inf')."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


OGC_EXCEPTION_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["code"], "additionalProperties": True,
    "description": "OGC API exception (OGC API - Common): `code`, and `description` naming "
                   "the problem",
    "properties": {"code": {"type": "string"}, "description": {"type": "string"}},
}


def document_errors(app: FastAPI) -> None:
    """Add the error answers of ERROR_STATUSES to every operation of the OpenAPI schema.

    FastAPI documents only its own 422 (a list of field errors); citygrid's domain errors
    answer `{"detail": "message"}` with any of these statuses. Responses a router documents
    itself (Open311's error lists) are kept.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schema.setdefault("components", {}).setdefault("schemas", {})["ErrorOut"] = (
            ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}"))
        schema["components"]["schemas"]["OgcException"] = OGC_EXCEPTION_SCHEMA
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        # /ogc answers errors in the OGC API exception shape {code, description}.
        ogc_error = {"application/json": {
            "schema": {"$ref": "#/components/schemas/OgcException"}}}
        for path, operations in schema.get("paths", {}).items():
            is_ogc = path == "/ogc" or path.startswith("/ogc/")
            for method, operation in operations.items():
                if method not in ("get", "put", "post", "patch", "delete"):
                    continue
                responses = operation.setdefault("responses", {})
                for status, description in ERROR_STATUSES.items():
                    if status == 409 and method == "get":
                        continue
                    known = responses.get(str(status))
                    if is_ogc or known is None or "HTTPValidationError" in str(known):
                        responses[str(status)] = {
                            "description": description, "content": ogc_error if is_ogc else error}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
