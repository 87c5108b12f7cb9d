"""Hostile-input guard for every route, as pure ASGI middleware: 400 before any route runs.

Refused, each with a message naming the problem and where it is (path, query parameter, header,
body field or file name):

* a NUL character, raw or escaped (`%00`, `\\u0000`): PostgreSQL text cannot hold one, and file
  names with one cannot be opened;
* text that is not valid UTF-8, which covers lone surrogates sent raw (`%ED%A0%80`) and JSON
  `\\ud800`-`\\udfff` escapes that are not a high-low pair: neither can be encoded for the
  database;
* JSON nested deeper than MAX_JSON_DEPTH, found by counting brackets outside strings in the
  raw bytes, so a 50,000-deep body cannot exhaust Python's recursion in `json.loads`.

Query strings, the headers the app reads as values, JSON and urlencoded bodies are checked
whole (JSON and form bodies are small: api/limits.py caps them, and this middleware sits inside
that one, so its byte counting applies to what is read here). Multipart uploads may be large
and binary, so only their part headers (field and file names) and their small text fields are
checked, as the bytes stream through; a bad one raises from `receive`, before the route runs.

The upload routes also take their file through `check_upload_name`, which refuses names that
cannot be a file (empty, `.`, `..`, longer than a file system allows).
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from urllib.parse import unquote_to_bytes

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.open311_xml import errors_document
from gis.platform.errors import InvalidInputError

MAX_JSON_DEPTH = 64
MAX_FILE_NAME_BYTES = 255  # ext4, xfs, NTFS: longer names cannot be created
CHECKED_FIELD_BYTES = 64 * 1024  # multipart text fields longer than this are file-like data
# Headers whose values routes read (tokens, versions); any header may not hold a NUL.
VALUE_HEADERS = (b"authorization", b"cookie", b"if-match")

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)", re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = [0] * 256
for _open in b"[{":
    _DEPTH_STEP[_open] = 1
for _close in b"]}":
    _DEPTH_STEP[_close] = -1


class HostileInputError(HTTPException):
    """A request refused by the guard (raised from `receive` for multipart parts)."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=400, detail=detail)


def text_problem(raw: bytes) -> str | None:
    """Why `raw` cannot be text for the app (NUL, not UTF-8 / lone surrogate), or None."""
    if b"\x00" in raw:
        return "contains a NUL character"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8 (a lone surrogate or a broken byte sequence)"
    return None


def json_problem(body: bytes) -> str | None:
    """Why a JSON body is refused (NUL, lone surrogate escape, too deep), or None."""
    problem = text_problem(body)
    if problem:
        return problem
    if b"\\u" in body:
        pending_high: int | None = None  # end of a high surrogate escape awaiting its low half
        for match in _ESCAPE.finditer(body):
            digits = match.group(1)
            code = int(digits, 16) if digits else None
            if pending_high is not None:
                if (code is not None and match.start() == pending_high
                        and 0xDC00 <= code <= 0xDFFF):
                    pending_high = None
                    continue
                return "contains a lone surrogate escape (\\ud800-\\udbff without its pair)"
            if code is None:
                continue
            if code == 0:
                return "contains a NUL character (\\u0000)"
            if 0xD800 <= code <= 0xDBFF:
                pending_high = match.end()
            elif 0xDC00 <= code <= 0xDFFF:
                return f"contains a lone surrogate escape (\\u{digits.decode().lower()})"
        if pending_high is not None:
            return "contains a lone surrogate escape (\\ud800-\\udbff without its pair)"
    brackets = _STRING.sub(b'""', body).translate(None, _NOT_BRACKETS)
    depth = max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)
    if depth > MAX_JSON_DEPTH:
        return f"is nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted"
    return None


def _shown(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").replace("\x00", "\\x00")
    return repr(text if len(text) <= 60 else text[:57] + "...")


def urlencoded_problem(raw: bytes, where: str) -> str | None:
    """The first name or value of `a=1&b=2` (percent-decoded) that is not clean text."""
    for pair in raw.split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        name = unquote_to_bytes(name.replace(b"+", b" "))
        problem = text_problem(name)
        if problem:
            return f"{where} name {_shown(name)} {problem}"
        problem = text_problem(unquote_to_bytes(value.replace(b"+", b" ")))
        if problem:
            return f"{where} {_shown(name)} {problem}"
    return None


def check_upload_name(filename: str | None, *, default: str) -> str:
    """The base name of an uploaded file, or InvalidInputError naming why it cannot be one."""
    name = default if filename is None else filename.replace("\\", "/").rsplit("/", 1)[-1]
    shown = _shown((filename or "").encode("utf-8", "surrogatepass"))
    if name in ("", ".", ".."):
        raise InvalidInputError(f"upload file name {shown} is not a file name")
    if "\x00" in name or any(ord(c) < 32 for c in name):
        raise InvalidInputError(f"upload file name {shown} contains a control character")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInputError(f"upload file name {shown} contains a lone surrogate") from None
    if size > MAX_FILE_NAME_BYTES:
        raise InvalidInputError(f"upload file name {shown} is {size} bytes long; at most "
                                f"{MAX_FILE_NAME_BYTES} are accepted")
    return name


class _MultipartCheck:
    """Checks part headers and small text fields of a multipart body as its chunks arrive."""

    def __init__(self, boundary: bytes) -> None:
        self.problem: str | None = None
        self.data = b""
        self.field = b""
        self.value = b""
        self.headers: dict[bytes, bytes] = {}
        self.name = b""
        self.is_file = False
        self.parser = MultipartParser(boundary, callbacks={
            "on_part_begin": self._begin, "on_header_field": self._field,
            "on_header_value": self._value, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done, "on_part_data": self._data,
            "on_part_end": self._end})

    def feed(self, chunk: bytes) -> str | None:
        """Parse `chunk`; the first problem found, or None."""
        if self.problem is None and chunk:
            try:
                self.parser.write(chunk)
            except Exception:  # malformed multipart: starlette itself answers 400
                self.problem = ""
        return self.problem or None

    def _begin(self) -> None:
        self.headers, self.data, self.field, self.value = {}, b"", b"", b""

    def _field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def _header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field, self.value = b"", b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = options.get(b"name", b"")
        self.is_file = b"filename" in options
        filename = options.get(b"filename", b"")
        problem = text_problem(filename)
        if self.is_file and problem and self.problem is None:
            self.problem = f"upload file name {_shown(filename)} {problem}"
        problem = text_problem(self.name)
        if problem and self.problem is None:
            self.problem = f"body field name {_shown(self.name)} {problem}"
        for header, value in self.headers.items():
            if b"\x00" in value and self.problem is None:
                self.problem = f"multipart header {_shown(header)} contains a NUL character"

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self.is_file and len(self.data) < CHECKED_FIELD_BYTES:
            self.data += data[start:end]

    def _end(self) -> None:
        if not self.is_file and self.problem is None:
            problem = text_problem(self.data[:CHECKED_FIELD_BYTES])
            if problem:
                self.problem = f"body field {_shown(self.name)} {problem}"


class InputGuardMiddleware:
    """400 for NUL, invalid UTF-8 / lone surrogates or over-deep JSON anywhere in a request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check path, query and headers, then the body by its media type."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _head_problem(scope)
        if problem:
            await _refuse(scope, send, problem)
            return
        media_type, boundary = _media_type(scope)
        if media_type == "multipart/form-data" and boundary:
            check = _MultipartCheck(boundary)

            async def checked_receive() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    found = check.feed(message.get("body", b""))
                    if found:
                        raise HostileInputError(found)
                return message

            await self.app(scope, checked_receive, send)
            return
        if media_type is not None and media_type != "application/x-www-form-urlencoded" \
                and not _is_json(media_type):
            await self.app(scope, receive, send)
            return

        # A JSON or form body (or one without a media type, which FastAPI reads as JSON):
        # read it whole, check it, then hand the same bytes to the app.
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = None
        if media_type == "application/x-www-form-urlencoded":
            problem = urlencoded_problem(body, "body field")
        elif body.strip():
            found = json_problem(body)
            problem = f"JSON body {found}" if found else None
        if problem:
            await _refuse(scope, send, problem)
            return
        await self.app(scope, _replay([body], None, receive), send)


def _head_problem(scope: Scope) -> str | None:
    raw_path = scope.get("raw_path")
    if raw_path is not None:
        path = unquote_to_bytes(bytes(raw_path).split(b"?", 1)[0])
    else:
        path = str(scope.get("path", "")).encode("utf-8", "surrogatepass")
    problem = text_problem(path)
    if problem:
        return f"path {_shown(path)} {problem}"
    problem = urlencoded_problem(scope.get("query_string", b""), "query parameter")
    if problem:
        return problem
    for name, value in scope.get("headers", []):
        if b"\x00" in value:
            return f"header {name.decode('latin-1')} contains a NUL character"
        if name.lower() in VALUE_HEADERS:
            problem = text_problem(value)
            if problem:
                return f"header {name.decode('latin-1')} {problem}"
    return None


def _media_type(scope: Scope) -> tuple[str | None, bytes | None]:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-type":
            kind, options = parse_options_header(value)
            return kind.decode("latin-1").lower(), options.get(b"boundary")
    return None, None


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _replay(chunks: list[bytes], pending: Message | None, receive: Receive) -> Receive:
    """A `receive` that first gives back what the guard already read."""
    queue: list[Message] = [{"type": "http.request", "body": b"".join(chunks),
                             "more_body": False}] if chunks else []
    if pending is not None:
        queue.append(pending)

    async def replay() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replay


async def _refuse(scope: Scope, send: Send, detail: str) -> None:
    # Open311 clients expect the GeoReport error list (XML on a .xml path), OGC clients the
    # OGC API exception {code, description}; everyone else the usual `detail`.
    path = str(scope.get("path", ""))
    content_type = b"application/json"
    if path.startswith("/open311/") and path.endswith(".xml"):
        body = errors_document(400, detail)
        content_type = b"text/xml; charset=utf-8"
    else:
        payload: object = {"detail": detail}
        if path.startswith("/open311/"):
            payload = [{"code": 400, "description": detail}]
        elif path == "/ogc" or path.startswith("/ogc/"):
            payload = {"code": "InvalidParameterValue", "description": detail}
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
