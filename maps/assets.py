"""Serve every script, stylesheet and font of a folium page from the app, never from a CDN.

Government networks are isolated, so a page that loads Leaflet from jsdelivr shows nothing.
`localize_assets` rewrites the CDN links folium and its plugins declare to the vendored copies
under /static/vendor (built by scripts/vendor_assets.sh); `render_html` renders the page and
refuses it if anything still points outside the app.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import folium
from branca.element import Element, Figure
from markupsafe import escape

from gis.platform.errors import CityGridError
from maps.lean_assets import trim_folium_defaults
from maps.shell import Shell, inject_shell

VENDOR_PREFIX = "/static/vendor"

# CDN URL (as folium 0.20 and the plugins maps/ uses declare it) -> path under VENDOR_PREFIX.
# A folium upgrade that changes a URL makes localize_assets fail loudly, naming the URL: add it
# here and rerun scripts/vendor_assets.sh with the new pinned version.
CDN_TO_LOCAL: dict[str, str] = {
    # folium.Map
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js": "leaflet/leaflet.js",
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css": "leaflet/leaflet.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js":
        "bootstrap/js/bootstrap.bundle.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css":
        "bootstrap/css/bootstrap.min.css",
    "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css":
        "glyphicons/css/glyphicons.css",
    "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.2.0/css/all.min.css":
        "fontawesome-free/css/all.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.js":
        "leaflet.awesome-markers/leaflet.awesome-markers.js",
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.css":
        "leaflet.awesome-markers/leaflet.awesome-markers.css",
    "https://cdn.jsdelivr.net/gh/python-visualization/folium/folium/templates/leaflet.awesome.rotate.min.css":
        "folium/leaflet.awesome.rotate.min.css",
    # folium.plugins.MarkerCluster / FastMarkerCluster (and maps.overview.PointCluster)
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/leaflet.markercluster.js":
        "leaflet.markercluster/leaflet.markercluster.js",
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.css":
        "leaflet.markercluster/MarkerCluster.css",
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.Default.css":
        "leaflet.markercluster/MarkerCluster.Default.css",
    # folium.plugins.HeatMap (folium's patched leaflet-heat, not npm leaflet.heat)
    "https://cdn.jsdelivr.net/gh/python-visualization/folium@main/folium/templates/leaflet_heat.min.js":
        "folium/leaflet_heat.min.js",
    # folium.plugins.Draw, for the planner page
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.draw/1.0.2/leaflet.draw.js":
        "leaflet-draw/leaflet.draw.js",
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.draw/1.0.2/leaflet.draw.css":
        "leaflet-draw/leaflet.draw.css",
}

# src="..." / href="..." / url(...) / @import "..." / L.tileLayer("...") whose target leaves
# the app: http(s) or protocol-relative. Anchors count too: an isolated network cannot follow
# them, and tile layers (folium's default OpenStreetMap) fetch from the internet.
_EXTERNAL = re.compile(
    r"(?:\b(?:src|href)\s*=\s*[\"']?|\burl\(\s*[\"']?|@import\s+[\"']"
    r"|\bL\.tileLayer(?:\.wms)?\(\s*[\"'])"
    r"\s*((?:https?:)?//[^\"'\s)>]+)",
    re.IGNORECASE,
)


def local_url(url: str, *, prefix: str = VENDOR_PREFIX) -> str:
    """The app path serving the vendored copy of CDN `url`; CityGridError if none is vendored."""
    if not _is_external(url):
        return url
    try:
        return f"{prefix.rstrip('/')}/{CDN_TO_LOCAL[url]}"
    except KeyError:
        raise CityGridError(
            f"no vendored copy of {url!r}; add it to maps.assets.CDN_TO_LOCAL and "
            "scripts/vendor_assets.sh") from None


def localize_assets(m: folium.Map, *, prefix: str = VENDOR_PREFIX) -> folium.Map:
    """Point every JS/CSS link of `m`'s figure (map and plugins) at the vendored copies."""
    for element in _walk(m.get_root()):
        for attr in ("default_js", "default_css"):
            links = getattr(element, attr, None)
            if links:
                # Assign a new list on the instance: folium's lists are class attributes
                # shared by every map in the process.
                setattr(element, attr, [(name, local_url(url, prefix=prefix))
                                        for name, url in links])
    return m


def external_urls(html: str) -> list[str]:
    """URLs in `html` that a browser would fetch (or follow) outside the app."""
    return sorted(set(_EXTERNAL.findall(html)))


STAFF_SHELL = Shell()  # the header of a staff page whose user the browser asks /auth/me for


def render_html(m: folium.Map, *, title: str | None = None,
                prefix: str = VENDOR_PREFIX, shell: Shell | None = STAFF_SHELL) -> str:
    """The complete zh-CN page of `m`, served assets only; CityGridError if anything is external.

    Every page gets the staff app shell (maps.shell) unless `shell` is None: public pages.
    folium's jQuery/Bootstrap/icon-font links are dropped where unused (maps.lean_assets).
    """
    trim_folium_defaults(m)
    localize_assets(m, prefix=prefix)
    figure = m.get_root()
    if not isinstance(figure, Figure):
        raise CityGridError(f"map {m.get_name()!r} is not inside a branca Figure")
    # Replace branca's http-equiv meta with the HTML5 form; same key so it stays first, ahead
    # of any non-ASCII text such as the title.
    figure.header.add_child(Element('<meta charset="utf-8">'), name="meta_http")
    # An empty icon: otherwise every browser asks for /favicon.ico and logs a 404 error.
    figure.header.add_child(Element('<link rel="icon" href="data:,">'), name="favicon")
    if title is not None:
        figure.header.add_child(Element(f"<title>{escape(title)}</title>"), name="page_title")
    html = figure.render()
    html, count = re.subn(r"<html>", '<html lang="zh-CN">', html, count=1)
    if count != 1:
        raise CityGridError("rendered page has no <html> tag to mark as lang=zh-CN")
    if shell is not None:
        html = inject_shell(html, shell)
    found = external_urls(html)
    if found:
        raise CityGridError(
            f"page would load {len(found)} external URL(s) on an isolated network: "
            + ", ".join(found[:5]))
    return html


def _is_external(url: str) -> bool:
    return url.startswith(("http://", "https://", "//"))


def _walk(element: Element) -> Iterator[Element]:
    yield element
    if isinstance(element, Figure):
        for part in (element.header, element.html, element.script):
            yield from _walk(part)
    for child in element._children.values():
        yield from _walk(child)
