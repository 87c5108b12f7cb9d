"""The app's static files (vendored Leaflet, plugins, Swagger UI) with Cache-Control.

Starlette's StaticFiles answers with ETag and Last-Modified but no Cache-Control, so a browser
guesses a freshness or asks again on every page. The vendored files change only when
scripts/vendor_assets.sh pins a new version: a day without asking is safe, and after that the
ETag makes the question cost a 304. A URL carrying a version (`?v=...`) never changes its
bytes, so it is cached for a year as immutable.

Text files (JS, CSS, SVG, JSON) are gzipped once per process and kept, instead of by the gzip
middleware on every request: a page's dozen scripts and styles otherwise cost the server
30-50 ms each under load, one after the other on the event loop.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading

from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

STATIC_CACHE = "public, max-age=86400"
VERSIONED_CACHE = "public, max-age=31536000, immutable"
COMPRESSIBLE = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".svg": "image/svg+xml", ".json": "application/json",
                ".txt": "text/plain; charset=utf-8"}
MAX_GZIP_BYTES = 4 * 1024 * 1024  # the biggest vendored file (swagger-ui bundle) is ~1.5 MB
_GZIPPED: dict[tuple[str, int, int], tuple[bytes, str]] = {}  # (path, mtime, size) -> gz, etag
_LOCK = threading.Lock()


class CachedStaticFiles(StaticFiles):
    """StaticFiles whose answers (200 and 304) say how long they may be kept."""

    def file_response(self, full_path: PathLike, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        """The file (or 304) with Cache-Control added."""
        versioned = "v" in QueryParams(scope.get("query_string", b""))
        cache = VERSIONED_CACHE if versioned else STATIC_CACHE
        request = Headers(scope=scope)
        suffix = os.path.splitext(str(full_path))[1].lower()
        if (status_code == 200 and suffix in COMPRESSIBLE
                and "gzip" in request.get("accept-encoding", "")
                and stat_result.st_size <= MAX_GZIP_BYTES):
            body, etag = _gzipped(str(full_path), stat_result)
            headers = {"Cache-Control": cache, "ETag": etag, "Vary": "Accept-Encoding"}
            if etag in [t.strip() for t in request.get("if-none-match", "").split(",")]:
                return Response(status_code=304, headers=headers)
            headers["Content-Encoding"] = "gzip"
            return Response(body, media_type=COMPRESSIBLE[suffix], headers=headers)
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = cache
        return response


def _gzipped(path: str, stat_result: os.stat_result) -> tuple[bytes, str]:
    """The file's gzip bytes and their ETag, made once per file version (mtime and size)."""
    key = (path, stat_result.st_mtime_ns, stat_result.st_size)
    with _LOCK:
        hit = _GZIPPED.get(key)
    if hit is None:
        with open(path, "rb") as f:
            raw = f.read()
        body = gzip.compress(raw, compresslevel=9, mtime=0)
        hit = (body, '"gz-' + hashlib.sha256(raw).hexdigest()[:32] + '"')
        with _LOCK:
            _GZIPPED[key] = hit
    return hit
