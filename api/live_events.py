"""Live case events: one LISTEN connection per app process fanned out to server-sent events.

Migration 0021 sends `NOTIFY citygrid_cases` from a trigger on `case_transitions`, inside the
transaction that changes the case, so an event exists only once the change is committed and
every app process (each with its own listener) hears every change. The listener is a thread
with its own psycopg2 connection in autocommit; notifications are handed to the event loop
and copied into one bounded queue per open stream. A stream that cannot keep up is ended
(the browser's EventSource reconnects); after the listener reconnects to the database the
streams get a `resync` event, because changes in between were not heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import select
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import psycopg2
import psycopg2.extensions
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.auth import StaffDep, oauth2_scheme, request_token
from api.deps import SessionDep
from gis.access import auth
from gis.access.auth import User
from gis.platform.errors import AuthenticationError

log = logging.getLogger(__name__)
CHANNEL = "citygrid_cases"
QUEUE_SIZE = 1000
LISTEN_WAIT_S = 10.0
HEARTBEAT: dict[str, Any] = {"action": "heartbeat"}  # a marker, compared by identity
# How often an open stream checks its sign-in still holds: one indexed query per stream, so
# many streams with 1 s heartbeats do not become many queries a second.
SIGN_IN_RECHECK_S = 15.0
router = APIRouter(tags=["live"])


class CaseEventHub:
    """Listens on `citygrid_cases` in a thread and copies each event to every subscriber."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.engine = engine
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._lock = threading.Lock()
        self._proxy: Any = None

    def _connect(self) -> Any:
        # A connection of the app pool, detached: same role, server and timeouts, but ours.
        proxy = self._engine.raw_connection()
        proxy.detach()
        # Keep the proxy: when it is garbage-collected it closes the connection under us.
        self._proxy = proxy
        conn: Any = proxy.dbapi_connection
        conn.rollback()
        conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {CHANNEL}")
        return conn

    def _run(self) -> None:
        backoff = 0.5
        first = True
        while not self._stop.is_set():
            conn = None
            try:
                conn = self._connect()
                self._listening.set()
                if not first:
                    self._publish({"action": "resync"})
                first, backoff = False, 0.5
                while not self._stop.is_set():
                    if select.select([conn], [], [], 0.5) == ([], [], []):
                        continue
                    conn.poll()
                    while conn.notifies:
                        note = conn.notifies.pop(0)
                        try:
                            self._publish(json.loads(note.payload))
                        except ValueError:
                            log.warning("unreadable %s payload: %.200s", CHANNEL, note.payload)
            except (psycopg2.Error, OSError) as exc:
                log.warning("case event listener lost its connection (%s); retrying", exc)
                self._listening.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(psycopg2.Error):
                        conn.close()

    def _publish(self, event: dict[str, Any]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # Too slow to keep up: end that stream rather than grow memory without bound.
                self._subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._loop = asyncio.get_running_loop()
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="case-events",
                                                daemon=True)
                self._thread.start()

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any] | None]]:
        """A queue of the events committed from now on (None: the stream must end)."""
        self._ensure_started()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            # Events are heard only once LISTEN ran: wait for it so none is missed.
            await asyncio.to_thread(self._listening.wait, LISTEN_WAIT_S)
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        """How many streams are open in this process."""
        return len(self._subscribers)

    def close(self) -> None:
        """Stop the listener thread (at app shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def case_event_hub(app: FastAPI) -> CaseEventHub:
    """The app's hub, made on first use (apps without streams never open the connection)."""
    hub = getattr(app.state, "case_events", None)
    if hub is None:
        hub = app.state.case_events = CaseEventHub(app.state.engine)
    return hub


def close_case_events(app: FastAPI) -> None:
    """Stop the app's listener, if it was started."""
    hub = getattr(app.state, "case_events", None)
    if hub is not None:
        hub.close()


def owned_grids(session: Any, owner_name: str) -> frozenset[str]:
    """Grid codes `owner_name` holds today."""
    rows = session.execute(text(
        "SELECT grid_code FROM grid_owners WHERE owner_name = :o AND valid_from <= current_date "
        "AND (valid_to IS NULL OR valid_to > current_date)"), {"o": owner_name}).scalars()
    return frozenset(str(code).strip() for code in rows)


def still_signed_in(engine: Engine, token: str | None, user: User
                    ) -> tuple[bool, frozenset[str] | None]:
    """Whether `token` still signs in `user` with the same role and scope, and for a grid
    owner the grids they hold now (a handover moves a grid's events to its new owner)."""
    if token is None:
        return False, None
    with Session(engine) as session:
        try:
            now = auth.user_for_token(session, token)
            same = (now.id, now.role, now.owner_name, now.district_code) == (
                user.id, user.role, user.owner_name, user.district_code)
            grids = owned_grids(session, user.owner_name or "") if user.is_grid_owner else None
        except (AuthenticationError, SQLAlchemyError):
            return False, None  # the database is away: end the stream, the browser reconnects
    return same, grids


def format_event(event: dict[str, Any]) -> str:
    """One server-sent event: `case` for case changes, `resync` after a listener reconnect."""
    name = "resync" if event.get("action") == "resync" else "case"
    return f"event: {name}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


# Not in the OpenAPI document: the stream never ends, which schema-driven clients and the
# fuzzer (tests/api/test_fuzz.py calls every operation) cannot handle; README documents it.
@router.get("/events/cases", response_class=StreamingResponse, include_in_schema=False)
async def case_events(
    request: Request, user: StaffDep, session: SessionDep,
    heartbeat: Annotated[float, Query(ge=1, le=60, description="seconds between heartbeat "
                                      "comments that keep proxies from closing the stream")] = 15,
) -> StreamingResponse:
    """Server-sent events of committed case changes; grid owners and districts hear only theirs."""
    grids = owned_grids(session, user.owner_name or "") if user.is_grid_owner else None
    scope = {"grids": grids}  # refreshed with each sign-in re-check
    token = request_token(request, await oauth2_scheme(request))
    # The stream may stay open for hours: give the request's connection back now.
    session.close()
    hub = case_event_hub(request.app)

    # A district sub-centre hears its own district only, as RLS lets it read (migration 0028).
    district = (user.district_code or "").strip()

    def visible(event: dict[str, Any]) -> bool:
        if event.get("action") in ("bulk", "resync"):
            return True
        code = str(event.get("grid_code") or "").strip()
        if district and not code.startswith(district):
            return False
        held = scope["grids"]
        return held is None or code in held

    async def stream() -> AsyncIterator[str]:
        checked = time.monotonic()
        async with hub.subscribe() as queue:
            yield "retry: 3000\n: listening\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=heartbeat)
                except TimeoutError:
                    event = HEARTBEAT
                # Signed in once, open for hours: a logout, an expired token or a disabled
                # account ends the stream within SIGN_IN_RECHECK_S, before another event.
                if time.monotonic() - checked >= max(heartbeat, SIGN_IN_RECHECK_S):
                    valid, scope["grids"] = await asyncio.to_thread(
                        still_signed_in, hub.engine, token, user)
                    if not valid:
                        return
                    checked = time.monotonic()
                if event is HEARTBEAT:
                    yield ": heartbeat\n\n"
                    continue
                if event is None:
                    return
                if visible(event):
                    yield format_event(event)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={
        "Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def events_iterator(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse server-sent event lines into {event, data} dicts (for clients and tests)."""
    name, data = "message", list[str]()
    for line in lines:
        if line == "":
            if data:
                yield {"event": name, "data": json.loads("\n".join(data))}
            name, data = "message", list[str]()
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
