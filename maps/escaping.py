"""One escaping policy for every page: data is text, never markup or code.

* HTML built in Python escapes every value with `markupsafe.escape` (or `Markup.format`, which
  escapes its arguments).
* Data reaches a page's script only as JSON (Jinja's `tojson`, which also escapes `<`, `>`,
  `&` and `'`, so a value cannot close the `<script>`).
* Script that builds HTML from data runs each value through ESC_JS's `esc()`.

folium's own `GeoJsonTooltip`, `GeoJsonPopup`, `Tooltip` and `Popup` put values into the page
as raw HTML (`Tooltip` even inside a JavaScript template literal, where `${...}` runs), so the
pages use the classes here instead.
"""

from __future__ import annotations

from typing import Any

from branca.element import MacroElement
from folium.features import GeoJsonPopup, GeoJsonTooltip
from folium.template import Template
from markupsafe import Markup, escape

__all__ = ["ESC_JS", "EscapedGeoJsonPopup", "EscapedGeoJsonTooltip", "Markup", "TextTooltip",
           "escape", "html_text"]

# The page-side twin of markupsafe.escape: `esc(value)` is safe inside element text and quoted
# attribute values. null and undefined show as nothing.
ESC_JS = """function esc(s) {
  return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
    return "&#" + c.charCodeAt(0) + ";";
  });
}"""


def html_text(value: Any) -> Markup:
    """`value` as HTML text: '' for None, everything else escaped (Markup passes through)."""
    return escape("" if value is None else value)


# A property table like folium's GeoJsonDetail, with every alias and value escaped.
_DETAIL = """function (layer) {
    """ + ESC_JS.replace("\n", "\n    ") + """
    var fields = {{ this.fields|tojson }};
    var aliases = {{ this.aliases|tojson }};
    var props = layer.feature.properties || {};
    var html = "<table>";
    for (var i = 0; i < fields.length; i++) {
        var v = props[fields[i]];
        if (v === null || v === undefined) { v = ""; }
        else if (typeof v === "object") { v = JSON.stringify(v); }
        {% if this.localize %}else { v = v.toLocaleString(); }{% endif %}
        html += "<tr>"{% if this.labels %} + "<th>" + esc(aliases[i]) + "</th>"{% endif %} +
                "<td>" + esc(v) + "</td></tr>";
    }
    var div = L.DomUtil.create("div");
    div.innerHTML = html + "</table>";
    return div;
}"""


class EscapedGeoJsonTooltip(GeoJsonTooltip):
    """folium's GeoJsonTooltip with the field values and aliases shown as text."""

    _template = Template("""
{% macro script(this, kwargs) %}
{{ this._parent.get_name() }}.bindTooltip(""" + _DETAIL + """,
    {{ this.tooltip_options|tojavascript }});
{% endmacro %}
""")


class EscapedGeoJsonPopup(GeoJsonPopup):
    """folium's GeoJsonPopup with the field values and aliases shown as text."""

    _template = Template("""
{% macro script(this, kwargs) %}
{{ this._parent.get_name() }}.bindPopup(""" + _DETAIL + """,
    {{ this.popup_options|tojavascript }});
{% endmacro %}
""")


class TextTooltip(MacroElement):
    """A tooltip on its parent (a marker or path): plain text escaped, Markup kept as built."""

    _template = Template("""
{% macro script(this, kwargs) %}
{{ this._parent.get_name() }}.bindTooltip({{ this.html|tojson }},
    {{ this.options|tojavascript }});
{% endmacro %}
""")

    def __init__(self, text: Any, *, sticky: bool = True, **options: Any) -> None:
        super().__init__()
        self._name = "TextTooltip"
        self.html = str(html_text(text))
        self.options = {"sticky": sticky, **options}
