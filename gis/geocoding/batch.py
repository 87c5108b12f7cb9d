"""Hotline exports with addresses and no coordinates: geocode the rows before batch routing.

`geocode_addresses` fills the coordinate columns of rows whose coordinates are missing from an
address column (地址, 事发地址, address, ...), tags them WGS84 and adds `geocode_level`,
`geocode_score` and `geocode_note` per row. Rows below the confidence threshold keep empty
coordinates; `explain_refusals` then replaces the router's "missing coordinates" with why the
address was not used. Each distinct address is matched once against the in-memory index.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from gis.geocoding.index import current_index
from gis.geocoding.match import match
from gis.geocoding.normalize import normalize_text
from gis.geocoding.parse import parse_address, prime_admin
from gis.geocoding.service import (
    CONFIDENT_SCORE,
    district_name_of,
    elsewhere,
    metric_to_wgs84,
)
from gis.platform.settings import CitySettings

ADDRESS_COLUMNS = ("地址", "事发地址", "详细地址", "事件地址", "address", "address_string",
                   "addr", "location")
GEOCODE_COLUMNS = ["geocode_level", "geocode_score", "geocode_note"]
MISSING = "missing coordinates"


def _column(lookup: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((lookup[n] for n in names if n in lookup), None)


def geocode_addresses(conn: Connection, frame: pd.DataFrame, *, city: CitySettings,
                      aliases: dict[str, tuple[str, ...]]) -> pd.DataFrame:
    """`frame` with coordinates filled from its address column where they are missing."""
    lookup = {str(c).strip().lower(): c for c in frame.columns}
    address = _column(lookup, ADDRESS_COLUMNS)
    if address is None:
        return frame
    frame = frame.copy()
    columns = {}
    for key in ("x", "y", "crs"):
        columns[key] = _column(lookup, aliases[key])
        if columns[key] is None:
            columns[key] = aliases[key][0]
            frame[columns[key]] = ""
    blank = np.zeros(len(frame), dtype=bool)
    for key in ("x", "y"):
        blank |= frame[columns[key]].astype(str).str.strip().isin(["", "nan", "None"]).to_numpy()
    texts = frame[address].astype(str).str.strip()
    wanted = blank & (texts != "").to_numpy()
    level: Any = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    score: Any = pd.Series([np.nan] * len(frame), index=frame.index, dtype=float)
    note: Any = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if wanted.any():
        index = current_index(Session(bind=conn), metric_epsg=city.metric_epsg)
        district = district_name_of(city)
        found: dict[str, tuple[Any, ...]] = {}
        distinct = list(pd.unique(texts[wanted]))
        prime_admin([normalize_text(q) for q in distinct])  # one cpca call, not one per row
        for q in distinct:
            parsed = parse_address(q, district_name=district)
            refused = elsewhere(parsed, city)
            best = None if refused else next(iter(match(parsed, index, limit=1)), None)
            if best is None:
                found[q] = (None, np.nan, refused or "地址未匹配到任何门牌、道路或地名", None)
            elif best.score < CONFIDENT_SCORE:
                found[q] = (best.level, best.score,
                            f"把握不足（{best.score:.2f}）：{best.why}", None)
            else:
                found[q] = (best.level, best.score, f"{best.name}：{best.why}",
                            (best.x, best.y))
        rows = frame.index[wanted]
        for i in rows:
            level[i], score[i], note[i], _ = found[texts[i]]
        located = [i for i in rows if found[texts[i]][3] is not None]
        if located:
            xy = np.array([found[texts[i]][3] for i in located])
            lon, lat = metric_to_wgs84(city.metric_epsg).transform(xy[:, 0], xy[:, 1])
            frame[columns["x"]] = frame[columns["x"]].astype(object)
            frame[columns["y"]] = frame[columns["y"]].astype(object)
            frame[columns["crs"]] = frame[columns["crs"]].astype(object)
            frame.loc[located, columns["x"]] = [f"{v:.7f}" for v in lon]
            frame.loc[located, columns["y"]] = [f"{v:.7f}" for v in lat]
            frame.loc[located, columns["crs"]] = "wgs84"
    frame["geocode_level"], frame["geocode_score"], frame["geocode_note"] = level, score, note
    return frame


def explain_refusals(result: pd.DataFrame) -> pd.DataFrame:
    """Rows whose address was not geocoded say why, instead of "missing coordinates"."""
    if "geocode_note" not in result.columns:
        return result
    refused = (result["reason"] == MISSING) & result["geocode_note"].notna()
    result.loc[refused, "reason"] = "address not geocoded: " + result.loc[refused,
                                                                          "geocode_note"]
    return result
