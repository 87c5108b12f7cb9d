"""Security headers on every response (pages, API, /ogc, static files), as pure ASGI middleware.

* No framing anywhere (`frame-ancestors 'none'` and `X-Frame-Options: DENY` for old browsers):
  a staff page inside another site's frame could be clicked through (clickjacking).
* `X-Content-Type-Options: nosniff`: a JSON answer or an uploaded file is never run as script.
* `Referrer-Policy: same-origin`: page addresses (with their query) stay inside the app.
* HTML gets a Content-Security-Policy as strict as its pages allow. They are folium output,
  with inline scripts and styles, so `script-src 'self' 'unsafe-inline'`; but everything else
  comes from the app itself (Leaflet and the rest are vendored under /static), so no other
  origin may serve script, style or font, and fetch/XHR may only reach the app. Images may also
  be data:/blob: URLs (Leaflet's icons, canvas exports) and come from the public map's base-map
  tile servers when one is configured (PublicMapSettings). Every other answer gets
  `default-src 'none'`: JSON, CSV or an SVG opened directly can run nothing.
* With https configured (ApiSettings.public_url), `Strict-Transport-Security` as well.

Headers a route set itself are kept.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gis.platform.settings import Settings
from maps.basemaps import basemap_for

NON_HTML_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def tile_origins(settings: Settings) -> list[str]:
    """Origins the public and staff maps' tiles come from (none for the offline defaults)."""
    origins: list[str] = []
    # The staff maps' tile mirror (CITYGRID_MAP_TILE_URL), when one replaces the base map.
    mirror = settings.staff_map
    staff = [(url, mirror.tile_subdomains) for url in (mirror.tile_url, mirror.tile_labels_url)
             if url]
    for url, subdomains in [*((t.url, t.subdomains) for t in basemap_for(settings.public).tiles),
                            *staff]:
        for sub in subdomains or " ":
            parts = urlsplit(url.replace("{s}", sub.strip()))
            origin = f"{parts.scheme}://{parts.netloc}"
            if parts.scheme in ("http", "https") and parts.netloc and origin not in origins:
                origins.append(origin)
    return origins


def html_csp(settings: Settings) -> str:
    """The Content-Security-Policy of HTML pages."""
    images = " ".join(["'self'", "data:", "blob:", *tile_origins(settings)])
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        f"img-src {images}",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.html_csp = html_csp(settings)
        self.common = [("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                       ("Referrer-Policy", "same-origin")]
        public_url = settings.api.public_url or ""
        if public_url.startswith("https://"):
            self.common.append(("Strict-Transport-Security", "max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.common:
                    headers.setdefault(name, value)
                kind = headers.get("content-type", "").lower()
                # A bodiless answer (304, 204) gets no policy: a 304 updates the cached page's
                # headers, and a non-HTML policy there would break the page it revalidates.
                if kind:
                    headers.setdefault("Content-Security-Policy", self.html_csp
                                       if kind.startswith("text/html") else NON_HTML_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)
