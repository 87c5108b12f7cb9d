"""Request body size limit for every route, as pure ASGI middleware.

JSON bodies may be `ApiSettings.max_body_kb`; the file uploads (`POST /layers/{id}/import`,
`POST /route/batch`) may be `max_upload_mb` (plus room for the multipart envelope). A body
announced larger by Content-Length is refused before a byte is read; a chunked body without
Content-Length is counted as it arrives and refused once it passes the limit. Either way the
answer is 413 with a JSON `detail` naming the limit, and the route never runs on a partial body,
so nothing is stored.
"""

from __future__ import annotations

import json
import re

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gis.platform.settings import ApiSettings

# Photos (case media, residents' 随手拍) are limited again per file by CITYGRID_MEDIA_MAX_MB.
UPLOAD_PATHS = re.compile(r"^/layers/[^/]+/import/?$|^/route/batch/?$|^/cases/[^/]+/media/?$"
                          r"|^/public/report/?$")
MULTIPART_ROOM = 1024 * 1024  # boundaries and the small form fields beside the file


class BodyTooLargeError(HTTPException):
    """A request body over its limit (raised from `receive`, so FastAPI passes it through)."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


class BodySizeLimitMiddleware:
    """413 for a request body over the limit of its route."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.json_limit = settings.max_body_kb * 1024
        self.json_label = f"{settings.max_body_kb} KB (CITYGRID_API_MAX_BODY_KB)"
        self.upload_limit = settings.max_upload_mb * 1024 * 1024 + MULTIPART_ROOM
        self.upload_label = f"{settings.max_upload_mb} MB (CITYGRID_API_MAX_UPLOAD_MB)"

    def _limit(self, path: str) -> tuple[int, str]:
        if UPLOAD_PATHS.match(path):
            return self.upload_limit, self.upload_label
        return self.json_limit, self.json_label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check Content-Length first, then count the bytes actually received."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, label = self._limit(scope.get("path", ""))
        where = f"{scope.get('method', '')} {scope.get('path', '')}"
        detail = f"request body of {where} is larger than the limit of {label}"

        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, f"{detail}: Content-Length is {declared} bytes")
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(f"{detail}: more than {limit} bytes arrived")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError as exc:
            # A route that read the body outside FastAPI's parsing let the error through.
            if started:
                raise
            await _refuse(send, exc.detail)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
