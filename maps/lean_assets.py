"""Only the scripts and styles a page uses: folium's default links trimmed to Leaflet.

folium.Map links, on every page, jQuery, Bootstrap 5 (script and stylesheet), Bootstrap 3's
glyphicons, Font Awesome and Leaflet.awesome-markers: 9 of a map page's requests and ~480 KB
of script and CSS the browser downloads, parses and runs before it can draw (issue 15, the
page time budget). citygrid's pages use none of them: their scripts are their own templates
over plain Leaflet, and no page uses a Bootstrap class or an icon font. In folium only
`Popup` (its HTML goes through jQuery), `Icon` (awesome markers, glyphicons, Font Awesome),
a `GeoJson` fetched by URL (`$.ajax`) and `Map.objects_to_stay_in_front`
(`$(document).ready`) need them: a page holding one of those keeps folium's defaults.

What the pages' looks do depend on is Bootstrap's Reboot (box-sizing, body font and margins,
form controls inheriting the font), so Bootstrap's stylesheet is replaced by its Reboot part
(`bootstrap-reboot.min.css` of the same Bootstrap release, 6 KB instead of 190 KB).
"""

from __future__ import annotations

from collections.abc import Iterator

import folium
from branca.element import Element, Figure
from folium.features import GeoJson
from folium.map import Icon, Popup

REBOOT_CSS = "/static/vendor/bootstrap/css/bootstrap-reboot.min.css"
# folium's names of the links no citygrid page needs (folium.folium._default_js/_default_css).
UNUSED_JS = frozenset({"jquery", "bootstrap", "awesome_markers"})
UNUSED_CSS = frozenset({"glyphicons_css", "awesome_markers_font_css", "awesome_markers_css",
                        "awesome_rotate_css"})
# The vendored files behind those links: a trimmed page requests none of them (tests check).
UNUSED_FILES = ("jquery.min.js", "bootstrap.bundle.min.js", "bootstrap.min.css",
                "glyphicons.css", "fontawesome-free", "leaflet.awesome-markers",
                "leaflet.awesome.rotate")


def needs_folium_defaults(m: folium.Map) -> bool:
    """True if an element of `m` uses jQuery, Bootstrap or the awesome-markers icons."""
    if getattr(m, "objects_to_stay_in_front", None):
        return True
    for element in _walk(m.get_root()):
        if isinstance(element, Popup | Icon):
            return True
        if isinstance(element, GeoJson) and not element.embed:
            return True
    return False


def trim_folium_defaults(m: folium.Map) -> folium.Map:
    """Drop folium's jQuery/Bootstrap/icon-font links from `m` unless an element needs them."""
    if needs_folium_defaults(m):
        return m
    # On the instance: folium's lists are class attributes shared by every map.
    m.default_js = [(name, url) for name, url in m.default_js if name not in UNUSED_JS]
    m.default_css = [(name, REBOOT_CSS if name == "bootstrap_css" else url)
                     for name, url in m.default_css if name not in UNUSED_CSS]
    return m


def _walk(element: Element) -> Iterator[Element]:
    yield element
    if isinstance(element, Figure):
        for part in (element.header, element.html, element.script):
            yield from _walk(part)
    for child in element._children.values():
        yield from _walk(child)
