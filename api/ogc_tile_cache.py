"""Per-process cache of /ogc vector tiles, keyed by the layer's data version, with ETags.

A dense tile (10,000 streetlights at zoom 14) costs ~20-40 ms of ST_AsMVT in PostGIS; a map
asks for the same tiles again and again while the layer does not change. So a GET of
`/ogc/collections/{layer}/tiles/{tms}/{z}/{x}/{y}` reads the data version of the table behind
the layer first (`pub.layer_versions()`, migration 0035, as the anonymous role on the /ogc
pool: one short statement), then answers from the cache when that tile was made under the
same version, path and query string; otherwise tipg makes it and a 200 is kept. A change to
the table moves its version at commit (migrations 0022/0030), so the next request misses and
makes the tile again: a cached tile is never older than the version it is keyed by. The
version is read before the tile, so a tile made while an edit commits is at least as new as
its key.

The tile's bytes are tipg's, unchanged; the answer gets an ETag (a hash of the bytes and the
layer) and `If-None-Match` gets 304. A client that accepts gzip gets the tile gzipped as the
app's GZipMiddleware would (from 2 KB, level 5, `Vary: Accept-Encoding`), compressed once per
cached tile instead of per request (a dense tile is ~400 KB: ~5-10 ms of zlib each time); that
variant has its own ETag, and the gzip middleware passes an answer that is already encoded.
Everything outside this middleware (input guard, CORS, security headers) runs on a cached
answer as on a made one; it sits innermost, so the query string it keys by is the one tipg
sees.

Not cached: other methods, the layers without a version counter (stall_zones: its view also
depends on today's date), answers other than 200, tiles over MAX_TILE_BYTES, and every request
while read replicas are configured (the version and the tile could come from different
servers; those reads go to tipg as before). Failing to read the version also just passes the
request on.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections import OrderedDict
from typing import Any

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.read_routing import has_replicas
from gis.geo.tiles import tile_etag

logger = logging.getLogger("citygrid.api")

TILE_PATH = re.compile(r"^/ogc/collections/([^/]+)/tiles/[^/]+/\d+/\d+/\d+$")
# Public layer -> the table its pub view reads (migration 0006); stall_zones has no counter.
LAYER_TABLES = {name: name for name in (
    "districts", "subdistricts", "communities", "grid_cells", "roads", "stations",
    "facilities", "streetlights", "manhole_covers")}
VERSIONS_SQL = "SELECT table_name, version FROM pub.layer_versions()"
MAX_BYTES = 64 * 1024 * 1024  # per process
MAX_TILE_BYTES = 2 * 1024 * 1024
GZIP_MIN_BYTES = 2048  # as api/main.py's GZipMiddleware(minimum_size=2048, compresslevel=5)
GZIP_LEVEL = 5
THREAD_MIN_BYTES = 128 * 1024  # compress bigger tiles off the event loop, as Starlette does


def gzipped(body: bytes) -> bytes:
    """The body as Starlette's GZipMiddleware encodes it (gzip stream, GZIP_LEVEL)."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


class Entry:
    """One cached tile: tipg's headers and bytes, their ETag, and the gzip variant once made."""

    __slots__ = ("body", "etag", "gz", "gz_etag", "headers")

    def __init__(self, headers: list[tuple[bytes, bytes]], body: bytes, etag: str) -> None:
        self.headers, self.body, self.etag = headers, body, etag
        self.gz: bytes | None = None
        self.gz_etag = ""


class TileCache:
    """Tiles by (layer, version, path, query), least recently used dropped past MAX_BYTES."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.entries: OrderedDict[tuple[Any, ...], Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> Entry | None:
        """The entry kept under `key`, or None."""
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
        return found

    def put(self, key: tuple[Any, ...], entry: Entry) -> None:
        """Keep a tile, dropping the least recently used past the byte limit."""
        old = self.entries.pop(key, None)
        if old is not None:
            self.size -= _size(old)
        self.entries[key] = entry
        self.size += _size(entry)
        self._trim()

    def grew(self, extra: int) -> None:
        """An entry's gzip variant was added: count it, trim past the limit."""
        self.size += extra
        self._trim()

    def _trim(self) -> None:
        while self.size > self.max_bytes and self.entries:
            _, dropped = self.entries.popitem(last=False)
            self.size -= _size(dropped)


def _size(entry: Entry) -> int:
    return len(entry.body) + (len(entry.gz) if entry.gz is not None else 0)


async def _layer_version(app: Any, table: str) -> int | None:
    pool = getattr(app.state, "pool", None)
    if pool is None:
        return None
    try:
        async with pool.acquire() as conn:
            rows = await conn.fetch(VERSIONS_SQL)
    except Exception:  # no 0035 yet, pool closing, database down: tipg answers as before
        logger.debug("/ogc tile cache: versions not readable", exc_info=True)
        return None
    for row in rows:
        if row["table_name"] == table:
            return int(row["version"])
    return None


async def _answer(send: Send, cache: TileCache, entry: Entry, *, wants_gzip: bool,
                  if_none_match: str | None) -> None:
    """Send the cached tile: gzipped when the client takes it (and the gzip middleware would)."""
    headers = MutableHeaders(raw=[(k, v) for k, v in entry.headers if k.lower() != b"etag"])
    body, etag = entry.body, entry.etag
    if wants_gzip and len(entry.body) >= GZIP_MIN_BYTES:
        if entry.gz is None:
            raw = entry.body
            gz = (await anyio.to_thread.run_sync(gzipped, raw) if len(raw) >= THREAD_MIN_BYTES
                  else gzipped(raw))
            if entry.gz is None:  # another request may have made it meanwhile
                entry.gz, entry.gz_etag = gz, tile_etag(raw, "gzip")
                cache.grew(len(gz))
        assert entry.gz is not None
        body, etag = entry.gz, entry.gz_etag
        headers["content-encoding"] = "gzip"
        headers["content-length"] = str(len(body))
        headers.add_vary_header("Accept-Encoding")
    headers["etag"] = etag
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        del headers["content-length"]
        del headers["content-type"]
        await send({"type": "http.response.start", "status": 304, "headers": headers.raw})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": headers.raw})
    await send({"type": "http.response.body", "body": body})


class OgcTileCacheMiddleware:
    """Answer /ogc tile GETs from the per-process cache while their layer's version holds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cache = TileCache()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass everything but cacheable tile GETs on; answer or fill the cache for those."""
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        found = TILE_PATH.match(scope.get("path", ""))
        table = LAYER_TABLES.get(found.group(1)) if found else None
        app = scope.get("app")
        if table is None or app is None or has_replicas(app):
            await self.app(scope, receive, send)
            return
        version = await _layer_version(app, table)
        if version is None:
            await self.app(scope, receive, send)
            return
        key = (table, version, scope["path"], scope.get("query_string", b""))
        request_headers = Headers(scope=scope)
        if_none_match = request_headers.get("if-none-match")
        # The gzip middleware's own test, so the client gets what it would have got.
        wants_gzip = "gzip" in request_headers.get("Accept-Encoding", "")
        hit = self.cache.get(key)
        if hit is not None:
            self.cache.hits += 1
            await _answer(send, self.cache, hit, wants_gzip=wants_gzip,
                          if_none_match=if_none_match)
            return
        self.cache.misses += 1
        start: Message | None = None
        chunks: list[bytes] = []
        passing = False

        async def capture(message: Message) -> None:
            nonlocal start, passing
            if passing:
                await send(message)
                return
            if message["type"] == "http.response.start":
                if message["status"] != 200:
                    passing = True  # errors and redirects go out as they are
                    await send(message)
                    return
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            entry = Entry(list(start.get("headers", [])), body, tile_etag(body, f"ogc:{table}"))
            if len(body) <= MAX_TILE_BYTES:
                self.cache.put(key, entry)
            await _answer(send, self.cache, entry, wants_gzip=wants_gzip,
                          if_none_match=if_none_match)

        await self.app(scope, receive, capture)
