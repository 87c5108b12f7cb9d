"""Reads on replicas (gis.platform.replicas): session dependencies, read-your-own-writes, 503s.

`PublicReadSessionDep` (anonymous, role citygrid_public) and `ReadSessionDep` (staff, role
citygrid_app, bound to the signed-in user like `SessionDep`) read from a standby whose replay
lag is within CITYGRID_DB_REPLICA_MAX_LAG_S, else from the primary. After a successful write
the client gets the primary's WAL position (cookie `citygrid_lsn`, header `X-Citygrid-Lsn`);
its next reads go to a standby only once that standby has replayed it (send it back as the
cookie or as `X-Citygrid-Min-Lsn`). Writes while the primary is down answer 503 saying the
app is read-only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import OptionalUserDep, bind_user
from api.deps import PublicSessionDep, SessionDep
from gis.platform.db import Role
from gis.platform.replicas import ReadRouter, int_to_lsn, lsn_to_int, primary_lsn
from gis.platform.settings import Settings

logger = logging.getLogger("citygrid.api")
LSN_COOKIE = "citygrid_lsn"
LSN_HEADER = "x-citygrid-min-lsn"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
READ_ONLY_DETAIL = ("the primary database is down: citygrid is read-only for now; reads still "
                    "answer, this write was not made - try again shortly")
READ_ONLY_ZH = "主数据库暂时不可用，系统处于只读状态：查询照常，本次提交或修改未保存，请稍后重试"


def _min_lsn(request: Request) -> int | None:
    raw = request.headers.get(LSN_HEADER) or request.cookies.get(LSN_COOKIE) or ""
    return lsn_to_int(raw.strip())


def _standby_session(request: Request, role: Role) -> Session | None:
    """A session on a fresh-enough standby, or None: read from the primary."""
    routers: dict[Role, ReadRouter] | None = getattr(request.app.state, "read_routers", None)
    router = routers.get(role) if routers else None
    if router is None or not router.standbys:
        request.state.read_from = "primary"
        return None
    session, source = router.session(min_lsn=_min_lsn(request))
    request.state.read_from = source
    return session


def get_public_read_session(request: Request, primary: PublicSessionDep) -> Iterator[Session]:
    """An anonymous read session (schema `pub` only), on a fresh-enough replica if any."""
    standby = _standby_session(request, "public")
    if standby is None:
        yield primary  # the request's own primary session (lazy: it connects on first use)
        return
    with standby:
        yield standby


def get_read_session(request: Request, user: OptionalUserDep,
                     primary: SessionDep) -> Iterator[Session]:
    """A staff read session on a fresh-enough replica if any, scoped to the user like writes."""
    standby = _standby_session(request, "app")
    if standby is None:
        yield primary  # already bound to the user by the sign-in dependency
        return
    with standby:
        # The same row-level security as SessionDep: a grid owner sees only their grids here too.
        bind_user(standby, user, request=f"{request.method} {request.url.path}")
        yield standby


def get_app_read_session(request: Request, primary: SessionDep) -> Iterator[Session]:
    """The runtime role's read session for anonymous routes that need more than `pub`."""
    standby = _standby_session(request, "app")
    if standby is None:
        yield primary
        return
    with standby:
        yield standby


PublicReadSessionDep = Annotated[Session, Depends(get_public_read_session)]
AppReadSessionDep = Annotated[Session, Depends(get_app_read_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]


def has_replicas(app: Any) -> bool:
    """Whether any standby is configured for this app."""
    routers = getattr(app.state, "read_routers", None) or {}
    return any(router.standbys for router in routers.values())


class WritePositionMiddleware:
    """After a successful write, tell the client the primary's WAL position (pure ASGI)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.secure = settings.api.secure_cookies
        self.max_age = max(60, int(settings.replicas.max_lag_s * 4))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the position to a successful write's answer."""
        if (scope["type"] != "http" or scope["method"] in SAFE_METHODS
                or not has_replicas(scope["app"])):
            await self.app(scope, receive, send)
            return
        engine = scope["app"].state.engine

        async def send_with_position(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                lsn = await anyio.to_thread.run_sync(primary_lsn, engine)
                if lsn is not None:
                    text = int_to_lsn(lsn)
                    cookie = (f"{LSN_COOKIE}={text}; Path=/; Max-Age={self.max_age}; HttpOnly; "
                              f"SameSite=Strict" + ("; Secure" if self.secure else ""))
                    headers = list(message.get("headers", []))
                    headers.append((b"set-cookie", cookie.encode()))
                    headers.append((b"x-citygrid-lsn", text.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_position)


def install_read_routing(app: FastAPI, settings: Settings) -> None:
    """Write positions for read-your-own-writes, and a read-only 503 for writes."""
    app.add_middleware(WritePositionMiddleware, settings=settings)
    previous = {exc: app.exception_handlers.get(exc) for exc in (OperationalError, InterfaceError)}

    async def database_down(request: Request, exc: Exception) -> Response:
        if request.method not in SAFE_METHODS and has_replicas(request.app):
            logger.warning("write refused while the primary is down: %s %s", request.method,
                           request.url.path)
            return JSONResponse({"detail": READ_ONLY_DETAIL, "message_zh": READ_ONLY_ZH,
                                 "read_only": True},
                                status_code=503, headers={"Retry-After": "5"})
        kind = InterfaceError if isinstance(exc, InterfaceError) else OperationalError
        handler = previous[kind] or previous[OperationalError]
        assert handler is not None
        result = await handler(request, exc)  # type: ignore[misc]
        assert isinstance(result, Response)
        return result

    app.add_exception_handler(OperationalError, database_down)
    app.add_exception_handler(InterfaceError, database_down)
