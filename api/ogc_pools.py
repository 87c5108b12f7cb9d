"""/ogc on read replicas: tipg's `app.state.pool`, routed per request to a fresh standby.

tipg's routers take their connection with `request.app.state.pool.acquire()`. When the owner
has installed tipg's catalog functions in schema `ogc_catalog` (migration 0032,
gis.platform.ogc_catalog) and they match the installed tipg, `OgcPools` stands in for that
pool: one asyncpg pool on the primary and one per standby, all as `citygrid_public`, none
running DDL on connect (a hot standby refuses even `pg_temp` functions). The router dependency
`choose_ogc_source` asks the public `ReadRouter` (gis.platform.replicas: the same staleness
bound, read-your-own-writes position and down-skip as /public) which standbys are fresh
enough; `acquire()` then takes a connection there, pinging it once: a standby that fails is
skipped for CITYGRID_DB_REPLICA_DOWN_S and the read goes to the next one, else the primary.
Without the installed functions /ogc keeps tipg's own setup on the primary, as before.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from functools import partial
from typing import Any

import anyio
import asyncpg
import orjson
from fastapi import Request

from api.read_routing import LSN_COOKIE, LSN_HEADER
from gis.platform.db import libpq_dsn
from gis.platform.ogc_catalog import INSTALLED_DIGEST_SQL, SCHEMA, catalog_digest
from gis.platform.replicas import ReadRouter, Standby, lsn_to_int

logger = logging.getLogger("citygrid.api")
APPLICATION_NAME = "citygrid-ogc"
CONNECT_TIMEOUT_S = 3.0
# Errors that mean "this standby cannot answer now" when taking a connection.
STANDBY_DOWN = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

# The standbys the current request may read, chosen by `choose_ogc_source` (None: primary).
_candidates: ContextVar[list[Standby] | None] = ContextVar("citygrid_ogc_candidates",
                                                           default=None)


class CatalogSchemaInit:
    """tipg's connection setup (JSON codecs, search path) without its per-connection DDL."""

    def __init__(self, schemas: list[str]) -> None:
        self.search_path = ",".join([SCHEMA, *schemas])

    async def __call__(self, conn: asyncpg.Connection) -> None:
        """Codecs as tipg sets them; the catalog schema first on the search path."""
        for name in ("json", "jsonb"):
            await conn.set_type_codec(name, encoder=orjson.dumps, decoder=orjson.loads,
                                      schema="pg_catalog")
        await conn.execute("SELECT set_config('search_path', $1 || ',' || "
                           "current_setting('search_path', false), false)", self.search_path)


async def catalog_installed(dsn: str) -> bool:
    """Whether schema ogc_catalog holds the catalog functions of the installed tipg."""
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        found = await conn.fetchval(INSTALLED_DIGEST_SQL)
    finally:
        await conn.close()
    if found != catalog_digest():
        logger.warning("schema %s does not hold this tipg's catalog functions (%s): /ogc reads "
                       "the primary with tipg's own per-connection setup; run `python -m "
                       "gis.platform.ogc_catalog` as the owner to install them", SCHEMA,
                       "missing" if found is None else "another version")
        return False
    return True


class _Acquire:
    """`async with pools.acquire() as conn`: a fresh standby if the request may, else primary."""

    def __init__(self, pools: OgcPools) -> None:
        self.pools = pools
        self.pool: asyncpg.Pool | None = None
        self.conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        for standby in _candidates.get() or []:
            pool = self.pools.pool_of(standby)
            if pool is None:
                continue
            conn = await self.pools.try_standby(standby, pool)
            if conn is not None:
                self.pool, self.conn = pool, conn
                return conn
        self.pool = self.pools.primary
        self.conn = await self.pool.acquire()
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        if self.pool is not None and self.conn is not None:
            await self.pool.release(self.conn)


class OgcPools:
    """Stands in for tipg's asyncpg pool: the primary's and one per standby of the router."""

    def __init__(self, primary: asyncpg.Pool, standbys: list[tuple[Standby, asyncpg.Pool]],
                 router: ReadRouter | None) -> None:
        self.primary = primary
        # By the router's own objects: standbys named by host (CITYGRID_DB_REPLICA_URLS) may
        # share a name when they share a host.
        self.standbys = standbys
        self.router = router

    def pool_of(self, standby: Standby) -> asyncpg.Pool | None:
        """The /ogc pool of one of the router's standbys."""
        return next((pool for known, pool in self.standbys if known is standby), None)

    def acquire(self) -> _Acquire:
        """A connection for one tipg query (the pool the request's dependency allowed)."""
        return _Acquire(self)

    async def try_standby(self, standby: Standby, pool: asyncpg.Pool) -> asyncpg.Connection | None:
        """A live connection to `standby`, or None after marking it down (failed once here)."""
        conn = None
        try:
            conn = await pool.acquire(timeout=CONNECT_TIMEOUT_S)
            await conn.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT_S)
            return conn
        except STANDBY_DOWN as exc:
            logger.warning("/ogc standby %s failed (%s): reading the primary", standby.name,
                           type(exc).__name__)
            if conn is not None:
                await pool.release(conn)
            if self.router is not None:
                self.router.mark_down(standby)
            # Its other idle connections died with it: reconnect when it is back.
            await pool.expire_connections()
            return None

    async def close(self) -> None:
        """Close every pool (tipg's close_db_connection calls this)."""
        for pool in (self.primary, *(pool for _, pool in self.standbys)):
            await pool.close()


async def open_pools(primary_dsn: str, router: ReadRouter | None, *, schemas: list[str],
                     server_settings: dict[str, str], pool_options: dict[str, Any]) -> OgcPools:
    """The primary's pool and one per standby of `router`, all without DDL on connect."""
    init = CatalogSchemaInit(schemas)
    settings = {**server_settings, "application_name": APPLICATION_NAME}
    primary = await asyncpg.create_pool(primary_dsn, init=init, server_settings=settings,
                                        **pool_options)
    standbys = []
    for standby in router.standbys if router is not None else []:
        # min_size 0: a standby that is down when the app starts must not stop it.
        standbys.append((standby, await asyncpg.create_pool(
            libpq_dsn(standby.engine.url), init=init, server_settings=settings,
            **{**pool_options, "min_size": 0}, timeout=CONNECT_TIMEOUT_S)))
    return OgcPools(primary, standbys, router)


async def choose_ogc_source(request: Request) -> None:
    """Router dependency of /ogc: the standbys this request may read (lag, own writes)."""
    pools = getattr(request.app.state, "pool", None)
    if not isinstance(pools, OgcPools) or pools.router is None or not pools.standbys:
        _candidates.set(None)
        return
    raw = request.headers.get(LSN_HEADER) or request.cookies.get(LSN_COOKIE) or ""
    # Measuring lag may query the standby and the primary: off the event loop.
    found = await anyio.to_thread.run_sync(
        partial(pools.router.candidates, min_lsn=lsn_to_int(raw.strip())))
    _candidates.set(found)
