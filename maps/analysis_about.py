"""The method box of an analysis page: method, parameters, study area and as-of time."""

from __future__ import annotations

from typing import Any

import folium
from branca.element import Element, Figure

from gis.analysis.about import AnalysisAbout
from maps.escaping import escape

ABOUT_CSS = """<style>
.cg-about{position:absolute;bottom:24px;left:10px;z-index:1000;background:rgba(255,255,255,.94);
  padding:6px 10px;border-radius:4px;font-size:12px;box-shadow:0 1px 4px rgba(0,0,0,.3);
  max-width:26rem;max-height:40vh;overflow:auto}
.cg-about summary{font-weight:600;cursor:pointer}
.cg-about p{margin:.3rem 0}
@media (max-width:600px){.cg-about{max-width:calc(100vw - 20px);bottom:auto;top:56px}}
</style>"""


def add_about(m: folium.Map, about: AnalysisAbout) -> folium.Map:
    """A collapsible box stating the method, parameters, study area and as-of time."""
    figure = m.get_root()
    if not isinstance(figure, Figure):
        raise TypeError(f"map {m.get_name()!r} is not inside a branca Figure")
    params = "；".join(f"{escape(k)}={escape(_plain(v))}" for k, v in about.parameters.items()
                      if v is not None)
    notes = "".join(f"<p>{escape(note)}</p>" for note in about.notes)
    validated = f"<p>校验：{escape(about.validated)}</p>" if about.validated else ""
    figure.header.add_child(Element(ABOUT_CSS), name="cg_about_css")
    figure.html.add_child(Element(
        f'<details class="cg-about" open><summary>方法说明</summary>'
        f"<p>方法：{escape(about.method)}</p>"
        f"<p>研究区：{escape(about.study_area)}</p>"
        f"<p>数据截至：{escape(about.as_of.strftime('%Y-%m-%d %H:%M'))}</p>"
        f"<p>参数：{params}</p>{validated}{notes}</details>"))
    return m


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
