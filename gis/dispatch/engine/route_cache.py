"""POST /route without the database: verified sign-ins and routing checks kept per process.

Each app process keeps what `signed_check` (gis/dispatch/engine/signed.py) last read:
sign-ins (token digest -> user, district, token expiry) and per category the routing check
(routing version, responsibility rule). They stay right only while nothing they came from
changes, so the process LISTENs on `citygrid_route_cache` on a connection of its own;
migration 0033's triggers NOTIFY it when tokens, users, the routing version, rules or
component classes change, and every notice drops both caches.

Safety rules (a revocation must never be missed):

* Nothing is served while the listener is not connected and listening (not yet started,
  killed, server restart, a database without migration 0033's triggers): callers then take
  the one-statement path. Losing the connection
  drops the caches, and a new connection starts from empty ones.
* An entry read before a notice can arrive after it: `remember` keeps an answer only when no
  notice (and no reconnect) came between the moment the caller took its `generation`
  (while listening) and the store.
* Each request first reads whatever notices already reached the listener's socket (`drain`,
  one non-blocking read), so a commit the listener's backend has delivered is seen by the
  very next request, not after a thread switch.
* Entries are at most `max_age_s` old (30 s) and never outlive their token's expiry; a
  silent, half-open connection is found by a heartbeat statement every `heartbeat_s`.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.extensions
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gis.access.auth import User

CHANNEL = "citygrid_route_cache"  # migration 0033
_MAX_SIGNINS = 10_000  # a runaway of distinct tokens clears the cache rather than grow it
_MAX_CHECKS = 2_000


class RouteCacheSettings(BaseSettings):
    """POST /route's sign-in cache (environment prefix CITYGRID_ROUTE_CACHE_)."""

    model_config = SettingsConfigDict(env_prefix="CITYGRID_ROUTE_CACHE_", extra="ignore")

    enabled: bool = True
    # The longest an entry is served even when no notice came (a missed notice's window).
    max_age_s: float = Field(default=30.0, gt=0, le=300)
    heartbeat_s: float = Field(default=5.0, gt=0)
    retry_s: float = Field(default=1.0, gt=0)  # wait before reconnecting a lost listener


@dataclass(frozen=True)
class _SignIn:
    user: User
    district_code: str | None
    expires_at: float  # the token's expiry, seconds since the epoch
    stored: float  # monotonic


class RouteCache:
    """A process's sign-in and check caches, dropped by NOTIFY from a listener thread."""

    def __init__(self, dsn: str, settings: RouteCacheSettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or RouteCacheSettings()
        self._dsn = dsn
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: psycopg2.extensions.connection | None = None
        self._ready = False
        self._generation = 0
        self._signins: dict[str, _SignIn] = {}
        self._checks: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.backend_pid: int | None = None  # the listener's server process (tests kill it)
        self.notices = 0

    # -- listener --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the listener thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._listen, name="route-cache-listener",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop listening, drop the caches and close the connection."""
        self._stop.set()
        with self._lock:
            self._lost()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def ready(self) -> bool:
        """True while the listener is connected and listening: only then is anything served."""
        return self._ready

    def _lost(self) -> None:
        # Under the lock: serve nothing until a new connection listens again.
        self._ready = False
        self._dropped()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass

    def _dropped(self) -> None:
        self._generation += 1
        self._signins.clear()
        self._checks.clear()

    def _take_notices(self, conn: psycopg2.extensions.connection) -> None:
        conn.poll()  # reads what the socket holds; raises when the connection is gone
        if conn.notifies:
            self.notices += len(conn.notifies)
            conn.notifies.clear()
            self._dropped()

    def _connect(self) -> None:
        conn = psycopg2.connect(self._dsn, application_name="citygrid route cache")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {CHANNEL}")
            cur.execute("SELECT pg_backend_pid(), to_regprocedure('route_cache_notify()')")
            row = cur.fetchone()
        if row is None or row[1] is None:
            # Before migration 0033 nothing notifies: listening would hear no revocation.
            conn.close()
            raise psycopg2.OperationalError("no route_cache_notify(): migration 0033 missing")
        with self._lock:
            self._conn = conn
            self.backend_pid = int(row[0])
            # Listening from here on: whatever commits later is heard; anything read later
            # already sees what committed before.
            self._dropped()
            self._ready = not self._stop.is_set()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self._connect()
                beat = self._clock()
                while not self._stop.is_set():
                    current = self._conn
                    if current is None or not self._ready:
                        raise psycopg2.OperationalError("listener dropped")
                    conn: psycopg2.extensions.connection = current
                    readable, _, _ = select.select([conn], [], [], 0.5)
                    with self._lock:
                        if self._conn is not current:
                            raise psycopg2.OperationalError("listener dropped")
                        self._take_notices(conn)
                        if not readable and self._clock() - beat >= self.settings.heartbeat_s:
                            beat = self._clock()
                            # A half-open connection delivers nothing and raises nothing
                            # until something is sent on it.
                            with conn.cursor() as cur:
                                cur.execute("SELECT 1")
                            self._take_notices(conn)
            except (psycopg2.Error, OSError, ValueError):
                with self._lock:
                    self._lost()
                self._stop.wait(self.settings.retry_s)
        with self._lock:
            self._lost()

    # -- requests --------------------------------------------------------------------------

    def generation(self) -> int | None:
        """The notice count to pass to `remember`, or None when nothing may be cached now."""
        with self._lock:
            return self._generation if self._ready else None

    def drain(self) -> bool:
        """Apply the notices already on the listener's socket; False when not serving."""
        with self._lock:
            conn = self._conn
            if not self._ready or conn is None:
                return False
            try:
                self._take_notices(conn)
            except (psycopg2.Error, OSError):
                self._lost()  # the listener thread reconnects
                return False
            return True

    def lookup(self, digest: str, category: tuple[str, str]
               ) -> tuple[User, dict[str, Any]] | None:
        """The cached user and check row (with their district) for a request, or None."""
        if not self.drain():
            return None
        now = self._clock()
        with self._lock:
            signin = self._signins.get(digest)
            check = self._checks.get(category)
            if signin is None or check is None:
                return None
            if (now - signin.stored > self.settings.max_age_s or time.time() >= signin.expires_at
                    or now - check[1] > self.settings.max_age_s):
                return None
            return signin.user, {**check[0], "district_code": signin.district_code}

    def remember(self, generation: int | None, digest: str, user: User,
                 row: Mapping[str, Any], category: tuple[str, str],
                 check_columns: tuple[str, ...]) -> bool:
        """Keep a verified sign-in and its check row, unless a notice came since `generation`."""
        expires = row.get("expires_at")
        if generation is None or not isinstance(expires, datetime):
            return False
        now = self._clock()
        with self._lock:
            if not self._ready or generation != self._generation:
                return False
            if len(self._signins) >= _MAX_SIGNINS or len(self._checks) >= _MAX_CHECKS:
                self._signins.clear()
                self._checks.clear()
            self._signins[digest] = _SignIn(user, row.get("district_code"),
                                            expires.timestamp(), now)
            self._checks[category] = ({k: row[k] for k in check_columns}, now)
            return True
