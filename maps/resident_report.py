"""The residents' 随手拍 pages: the report form and the tracking page (phone first, zh-CN).

Plain HTML from Jinja templates with autoescaping (templates/resident_report*.html); data for
the script goes in as JSON (`tojson`). Leaflet is the vendored copy; the map has no tiles, only
the district outlines, so the page works on an isolated network. The api hands in everything;
this module never reads the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   keep_trailing_newline=True)


def _asset(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def report_form_page(*, categories: Sequence[Mapping[str, str]], outlines: Mapping[str, Any],
                     center: tuple[float, float], bbox: tuple[float, float, float, float],
                     city: str, max_mb: float) -> str:
    """The 随手拍 form: photo, category, location (phone or tapped point), optional contact."""
    return _env.get_template("resident_report.html").render(
        categories=categories, city=city, max_mb=max_mb, css=_asset("resident_report.css"),
        script=_asset("resident_report.js"),
        config={"center": list(center), "bbox": list(bbox), "outlines": outlines,
                "maxBytes": int(max_mb * 1024 * 1024)})


def tracking_page(*, case_no: str, service_name: str | None, description: str | None,
                  steps: Sequence[str], step: int, rejected: bool, requested: dt.datetime,
                  updated: dt.datetime | None, expected: dt.datetime | None,
                  agency: str | None, report_photos: Sequence[str],
                  after_photos: Sequence[str], tz: dt.tzinfo, city: str) -> str:
    """The tracking page of one report: steps reached, dates, and the photos published."""
    def local(moment: dt.datetime | None) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""

    return _env.get_template("resident_report_status.html").render(
        case_no=case_no, service_name=service_name, description=description,
        steps=list(enumerate(steps)), step=step, rejected=rejected,
        requested=local(requested), updated=local(updated), expected=local(expected),
        agency=agency, report_photos=report_photos, after_photos=after_photos, city=city,
        css=_asset("resident_report.css"))
