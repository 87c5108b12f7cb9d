"""`Idempotency-Key`: a write resent by a phone with a poor signal is applied once.

A client sends a fresh key (a UUID) with a write and the same key on every retry of that
write. The dependency `idempotent` claims the key inside the route's own transaction
(table `idempotency_keys`, migration 0021), so the claim and the change commit together or
not at all; the middleware then stores the answer before it goes out. A retry with the same
key and the same request gets the stored answer back (header `Idempotency-Replayed: true`)
and changes nothing; the same key with a different request is refused (422), and a retry
while the first is still running gets 409 with `Retry-After`. Keys are per user.

Keys expire after `CITYGRID_API_IDEMPOTENCY_KEEP_DAYS` (default 7): an expired key is removed
when it comes again, so the request runs as a new one, and every stored answer also purges up
to `PURGE_BATCH` expired keys of anyone (an index range on `created_at`, so the table stays
about one retention period long without a scheduled job).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import OptionalUserDep
from api.deps import SessionDep
from gis.platform.errors import ConflictError, InvalidInputError

HEADER = "Idempotency-Key"
KEY_PATTERN = re.compile(r"^[!-~]{1,200}$")
STATE_KEY = "idempotency_claim"
MAX_STORED_BYTES = 1_000_000
# More than the one key each stored answer adds, so the purge keeps up after a quiet spell.
PURGE_BATCH = 50


class IdempotentReplay(Exception):
    """The request was answered before: send that answer again."""

    def __init__(self, status_code: int, body: Any) -> None:
        super().__init__(f"replay of a {status_code} answer")
        self.status_code = status_code
        self.body = body


def request_digest(method: str, path: str, body: bytes) -> str:
    """SHA-256 of what makes two requests the same: method, path and body."""
    return hashlib.sha256(f"{method} {path}\n".encode() + body).hexdigest()


def _insert(session: Any, *, username: str, key: str, method: str, path: str,
            digest: str) -> int | None:
    claimed = session.execute(text(
        "INSERT INTO idempotency_keys (username, key, method, path, body_sha256) "
        "VALUES (:u, :k, :m, :p, :d) ON CONFLICT (username, key) DO NOTHING RETURNING id"),
        {"u": username, "k": key, "m": method, "p": path, "d": digest}).scalar()
    return None if claimed is None else int(claimed)


def _drop_expired(engine: Engine, *, username: str, key: str, keep_days: float) -> int:
    # As the app role in its own transaction: a grid owner's role may not delete, and the
    # claim that follows must see the row gone.
    with engine.begin() as conn:
        return conn.execute(text(
            "DELETE FROM idempotency_keys WHERE username = :u AND key = :k "
            "AND created_at < now() - make_interval(secs => :keep)"),
            {"u": username, "k": key, "keep": keep_days * 86400}).rowcount or 0


def _claim(session: Any, *, username: str, key: str, method: str, path: str,
           digest: str, engine: Engine | None = None, keep_days: float | None = None) -> int:
    row = {"username": username, "key": key, "method": method, "path": path, "digest": digest}
    claimed = _insert(session, **row)
    if claimed is not None:
        return claimed
    if engine is not None and keep_days is not None and _drop_expired(
            engine, username=username, key=key, keep_days=keep_days):
        claimed = _insert(session, **row)
        if claimed is not None:
            return claimed
    earlier = session.execute(text(
        "SELECT method, path, body_sha256, status_code, response FROM idempotency_keys "
        "WHERE username = :u AND key = :k"), {"u": username, "k": key}).mappings().one()
    if (earlier["method"], earlier["path"], earlier["body_sha256"]) != (method, path, digest):
        raise InvalidInputError(
            f"{HEADER} {key!r} was used for another request ({earlier['method']} "
            f"{earlier['path']}); send a new key for a new request")
    if earlier["status_code"] is None:
        raise ConflictError(f"the request with {HEADER} {key!r} is still being answered; "
                            f"retry in a moment")
    raise IdempotentReplay(earlier["status_code"], earlier["response"])


async def idempotent(
    request: Request, session: SessionDep, user: OptionalUserDep,
    key: Annotated[str | None, Header(alias=HEADER, description=(
        "a fresh key (e.g. a UUID) per write, the same on every retry of it: a retry gets the "
        "first answer back and changes nothing"))] = None,
) -> None:
    """Claim the request's `Idempotency-Key` in the route's transaction, or replay its answer."""
    if key is None or user is None:  # no key: an ordinary write; no user: the route says 401
        return
    if not KEY_PATTERN.match(key):
        raise InvalidInputError(f"{HEADER} must be 1-200 visible ASCII characters")
    digest = request_digest(request.method, request.url.path, await request.body())
    state = request.app.state
    claim = await anyio.to_thread.run_sync(lambda: _claim(
        session, username=user.username, key=key, method=request.method,
        path=request.url.path, digest=digest, engine=state.engine,
        keep_days=state.settings.api.idempotency_keep_days))
    request.state.idempotency_claim = claim


IdempotentDep = Depends(idempotent)


def _store(engine: Engine, claim: int, status: int, body: bytes,
           keep_days: float | None = None) -> None:
    try:
        stored: Any = json.loads(body) if body else None
    except ValueError:
        stored = None
    if len(body) > MAX_STORED_BYTES:
        stored = None
    with engine.begin() as conn:
        # Zero rows when the route failed: its transaction, and so the claim, rolled back.
        conn.execute(text(
            "UPDATE idempotency_keys SET status_code = :s, response = CAST(:r AS jsonb), "
            "completed_at = now() WHERE id = :i AND status_code IS NULL"),
            {"s": status, "r": json.dumps(stored, ensure_ascii=False), "i": claim})
        if keep_days is not None:
            purge_expired(conn, keep_days=keep_days, limit=PURGE_BATCH)


def purge_expired(conn: Any, *, keep_days: float, limit: int | None = None) -> int:
    """Delete keys older than `keep_days` (the oldest `limit` of them); the number deleted."""
    return conn.execute(text(
        "DELETE FROM idempotency_keys WHERE id IN (SELECT id FROM idempotency_keys "
        "WHERE created_at < now() - make_interval(secs => :keep) ORDER BY created_at "
        "LIMIT :n)"), {"keep": keep_days * 86400, "n": limit}).rowcount or 0


class IdempotencyMiddleware:
    """Stores the answer of a request that claimed a key, before the answer leaves."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; buffer the answer of a claimed key, store it, then send it."""
        if scope["type"] != "http" or HEADER.lower().encode() not in dict(scope["headers"]):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            claim = scope.get("state", {}).get(STATE_KEY)
            if claim is None:
                await send(message)
                return
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            assert start is not None
            body = b"".join(chunks)
            if start["status"] < 500:
                state = scope["app"].state
                await anyio.to_thread.run_sync(
                    _store, state.engine, claim, start["status"], body,
                    state.settings.api.idempotency_keep_days)
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)


def install_idempotency(app: FastAPI) -> None:
    """Answer replays and store first answers (add before other middleware: innermost)."""

    async def replay(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, IdempotentReplay)
        return JSONResponse(exc.body, status_code=exc.status_code,
                            headers={"Idempotency-Replayed": "true"})

    app.add_exception_handler(IdempotentReplay, replay)
    app.add_middleware(IdempotencyMiddleware)
