"""Cross-site request forgery guard, as pure ASGI middleware: unsafe cookie requests must be ours.

The login cookie is SameSite=Strict, but "site" means scheme plus registrable domain, not port:
a page on http://127.0.0.1:9999 (or any other app on the same host) is same-site, and the
browser sends it the cookie with a forged form POST. So every request that may change state
(any method but GET, HEAD, OPTIONS, TRACE) and carries the login cookie must come from the
app's own origin, scheme + host + port: its Origin header, or failing that its Referer, must
equal the origin the request was sent to (ApiSettings.public_url when set, else the request's
own scheme and Host header). A cookie request with neither header is refused too: every
browser sends Origin on a POST, PUT, PATCH or DELETE, so only a non-browser client lacks both,
and such a client should use a bearer token.

The login form (POST /auth/login) is checked the same way even without a cookie, so another
site cannot sign a victim in under the attacker's account (login CSRF).

Bearer-token clients (`Authorization: Bearer ...`) pass untouched: a browser never attaches
that header by itself, and another origin cannot add it without a CORS preflight, which this
app does not grant. No CSRF token is used: a double-submit cookie would be readable and
writable by the very same-host-other-port page this guards against, and the app's pages post
with fetch or a plain form, which always carry Origin.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import TOKEN_COOKIE
from gis.platform.settings import ApiSettings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
LOGIN_FORM_PATHS = frozenset({"/auth/login", "/auth/login/"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Origin = tuple[str, str, int]


def parse_origin(value: str) -> Origin | None:
    """(scheme, host, port) of an Origin or URL; None for `null`, opaque or malformed values."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def format_origin(origin: Origin) -> str:
    """`scheme://host:port` for messages."""
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


class CsrfMiddleware:
    """403 for an unsafe cookie-authenticated request (or login form) from another origin."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.public_origin = parse_origin(settings.public_url) if settings.public_url else None

    def _own_origin(self, scope: Scope, headers: Headers) -> Origin | None:
        if self.public_origin is not None:
            return self.public_origin
        host = headers.get("host")
        if not host:
            server = scope.get("server")
            if not server:
                return None
            host = f"{server[0]}:{server[1]}"
        return parse_origin(f"{scope.get('scheme', 'http')}://{host}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass safe methods, bearer requests and cookie-less requests; check the rest."""
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope.get("path", "")
        authorization = headers.get("authorization", "")
        bearer = authorization[:7].lower() == "bearer " and authorization[7:].strip() != ""
        has_cookie = TOKEN_COOKIE in cookie_parser(headers.get("cookie", ""))
        if bearer or not (has_cookie or path in LOGIN_FORM_PATHS):
            await self.app(scope, receive, send)
            return

        where = f"{scope['method']} {path}"
        what = "the login form" if path in LOGIN_FORM_PATHS and not has_cookie else \
            "a request with the login cookie"
        own = self._own_origin(scope, headers)
        origin_header = headers.get("origin")
        referer = headers.get("referer")
        if origin_header is not None:
            claimed, source = parse_origin(origin_header), f"Origin {origin_header[:100]!r}"
        elif referer:
            claimed, source = parse_origin(referer), "Referer"
        else:
            await _refuse(send, f"{where} refused: {what} must come from the app's own pages, "
                                f"but it has neither an Origin nor a Referer header (CSRF "
                                f"protection); API clients send Authorization: Bearer <token> "
                                f"from POST /auth/token instead of the cookie")
            return
        if own is None or claimed != own:
            expected = format_origin(own) if own else "the app's own origin"
            got = format_origin(claimed) if claimed else "an opaque or malformed origin"
            await _refuse(send, f"{where} refused: {what} comes from {got} ({source}), not "
                                f"from {expected} (CSRF protection: scheme, host and port must "
                                f"match)")
            return
        await self.app(scope, receive, send)


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
