"""Small Leaflet controls shared by the map pages."""

from __future__ import annotations

from branca.element import MacroElement
from jinja2 import Template


class MetricScale(MacroElement):
    """Leaflet's scale bar in metres only (folium's control_scale adds feet)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        L.control.scale({imperial: false, metric: true}).addTo({{ this._parent.get_name() }});
        {% endmacro %}
    """)
