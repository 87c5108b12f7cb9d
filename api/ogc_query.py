"""/ogc query parameters and errors as the standard wants them: caps, unknown names, OGC bodies."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.ogc_standard import ogc_exception

# --- query parameters -----------------------------------------------------------------------

MAX_LIMIT = 10_000  # tipg's max_features_per_query
ITEMS_SUFFIX = "/items"


class CapLimitMiddleware:
    """`limit` below 1 or above 10000 on /ogc items becomes 1 or 10000 (not an error)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite the query string before the route (and its links) sees it."""
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(self.prefix + "/collections/") and b"limit=" in scope["query_string"]:
            scope = {**scope, "query_string": capped_query(scope["query_string"])}
        await self.app(scope, receive, send)


def capped_query(query_string: bytes) -> bytes:
    """The query string with an integer `limit` capped to 1..MAX_LIMIT (fc-limit-response-1)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    out = []
    for key, value in pairs:
        if key == "limit":
            try:
                value = str(min(max(int(value), 1), MAX_LIMIT))
            except ValueError:
                pass  # not an integer: refused as an invalid parameter (400)
        out.append((key, value))
    return urlencode(out).encode("latin-1")


# Parameters tipg declares on no route but reads from the request itself (per-collection
# property filters are the layer's columns; see `known_parameters_only`).
_PROPERTY_FILTER_ROUTES = {"items", "collection_get_tile"}
_route_parameters: dict[int, frozenset[str]] = {}


def _declared_parameters(route: APIRoute, overrides: dict[Any, Any]) -> frozenset[str]:
    """Query parameter names of a route, its dependencies and their overrides."""
    if id(route) not in _route_parameters:
        names: set[str] = set()
        stack: list[Dependant] = [route.dependant]
        while stack:
            dependant = stack.pop()
            names |= {p.alias for p in dependant.query_params}
            stack.extend(dependant.dependencies)
            if dependant.call in overrides:
                stack.append(get_dependant(path=route.path, call=overrides[dependant.call]))
        _route_parameters[id(route)] = frozenset(names)
    return _route_parameters[id(route)]


def known_parameters_only(request: Request) -> None:
    """400 for a query parameter the operation does not define (/req/core/query-param-unknown)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = set(_declared_parameters(route, request.app.dependency_overrides))
    if route.name in _PROPERTY_FILTER_ROUTES:
        catalog = request.app.state.collection_catalog["collections"]
        collection = catalog.get(request.path_params.get("collectionId", ""))
        if collection is not None:
            allowed |= {c.name for c in collection.properties
                        if c.type not in ("geometry", "geography")}
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise StarletteHTTPException(status_code=400, detail=(
            f"unknown query parameter(s) {', '.join(repr(u[:40]) for u in unknown[:5])}; "
            f"this operation takes {', '.join(sorted(allowed))}"))


# --- errors ---------------------------------------------------------------------------------


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """Status and one-line message of a refused request (404 for an unknown path value)."""
    parts = []
    status = 400
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        if loc[:1] == ["path"]:
            status = 404  # an unknown tileMatrixSetId names no resource
        name = loc[-1] if loc else "request"
        parts.append(f"{name}: {error.get('msg', 'invalid')}")
    return status, "; ".join(parts)[:500] or "invalid request"


def install_ogc_errors(app: FastAPI, prefix: str) -> None:
    """Errors under `prefix` as OGC exceptions {code, description}; elsewhere unchanged."""
    previous_validation = app.exception_handlers[RequestValidationError]
    previous_http = app.exception_handlers[StarletteHTTPException]

    def under_prefix(request: Request) -> bool:
        path = request.url.path
        return path == prefix or path.startswith(prefix + "/")

    async def validation_error(request: Request, exc: Exception) -> Response:
        if not under_prefix(request):
            return await _call(previous_validation, request, exc)
        assert isinstance(exc, RequestValidationError)
        return ogc_exception(*_validation_message(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        if not under_prefix(request):
            return await _call(previous_http, request, exc)
        assert isinstance(exc, StarletteHTTPException)
        status = 400 if exc.status_code == 422 else exc.status_code
        response = ogc_exception(status, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


async def _call(handler: Callable, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    return await result if inspect.isawaitable(result) else result


def tipg_error_handler(status: int) -> Callable[[Request, Exception], JSONResponse]:
    """Handler of a tipg error class: OGC exception body with `status`."""

    def handler(_: Request, exc: Exception) -> JSONResponse:
        return ogc_exception(status, str(exc) or type(exc).__name__)

    return handler
