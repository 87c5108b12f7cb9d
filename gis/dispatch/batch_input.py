"""Batch routing, step one: read a hotline export and check every row, in pandas/numpy.

`read_table` reads CSV (UTF-8 or GB18030) or .xlsx as text; `prepare` finds the columns by
their usual names (ALIASES), converts coordinates to WGS84 and gives every row that cannot be
routed a `reason`. Nothing here touches the database.
"""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gis.dispatch.batch_texts import CodedTexts
from gis.dispatch.routing import (
    CATEGORY_CODE,
    COMPONENT_CODE,
    COVER_CLASSES,
    STREETLIGHT_CLASS,
)
from gis.dispatch.routing_settings import RoutingSettings
from gis.geo.coords import SUPPORTED_CRS, in_china, normalise_crs, to_wgs84_many, valid_lonlat
from gis.platform.errors import InvalidInputError, NotFoundError
from gis.platform.settings import CitySettings
from gis.platform.zip_safety import check_unpacked_size

# Column names hotline systems use, first match wins (case-insensitive, trimmed).
ALIASES: dict[str, tuple[str, ...]] = {
    "x": ("x", "lon", "lng", "longitude", "经度"),
    "y": ("y", "lat", "latitude", "纬度"),
    "crs": ("crs", "坐标系"),
    "at": ("at", "reported_at", "time", "datetime", "受理时间", "时间"),
    "category_type": ("category_type", "类型"),
    "category_code": ("category_code", "category", "类别", "类别编码"),
    "component_code": ("component_code", "部件编码"),
}


def _resolve_columns(frame: pd.DataFrame) -> dict[str, str]:
    lookup = {str(c).strip().lower(): c for c in frame.columns}
    found: dict[str, str] = {}
    for key, names in ALIASES.items():
        for name in names:
            if name in lookup:
                found[key] = lookup[name]
                break
    missing = [k for k in ("x", "y") if k not in found]
    if missing:
        raise InvalidInputError(
            f"no {' / '.join(missing)} column: expected one of "
            + "; ".join(", ".join(ALIASES[k]) for k in missing)
            + f"; found {', '.join(map(str, frame.columns))}")
    return found


# An .xlsx is a zip: 50 MB of upload can unpack to 50 GB of sheet XML, which pandas would
# read whole into memory. A million-row sheet of points unpacks to about 150 MB.
MAX_XLSX_UNPACKED_MB = 1024


def read_table(path: Path) -> pd.DataFrame:
    """Every cell of a CSV or .xlsx export as text (numbers are checked per row later)."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        try:
            import openpyxl  # noqa: F401  (pandas needs it; checked here for a clear message)
        except ImportError:
            raise InvalidInputError(
                f"{path.name}: reading Excel needs the openpyxl package; install it or save "
                "the sheet as CSV") from None
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            check_unpacked_size(path, limit_mb=MAX_XLSX_UNPACKED_MB,
                                advice="save the sheet as CSV or split it")
            return pd.read_excel(path, dtype=str, keep_default_na=False)
        except (ValueError, KeyError, OSError, zipfile.BadZipFile, InvalidFileException) as exc:
            # openpyxl's own errors name no path; pandas' and zipfile's are short.
            raise InvalidInputError(f"{path.name}: not a readable Excel workbook "
                                    f"({type(exc).__name__})") from None
    if suffix in (".csv", ".txt"):
        for encoding in ("utf-8-sig", "gb18030"):  # hotline systems on Windows export GBK
            try:
                return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
            except UnicodeDecodeError:
                continue
            except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
                raise InvalidInputError(f"{path.name}: not a readable CSV table "
                                        f"({str(exc).splitlines()[0][:200]})") from None
        raise InvalidInputError(f"{path.name}: text is neither UTF-8 nor GB18030")
    raise InvalidInputError(f"{path.name}: unsupported file type {suffix!r}; use .csv or .xlsx")


def _numbers(raw: pd.Series, name: str, reason: Any) -> np.ndarray:
    values = _parsed_numbers(raw, name, reason)
    # inf / 1e999 parse as numbers; named here, or they surface later as "(nan, nan)".
    infinite = np.isinf(values)
    infinite[infinite] = (reason[infinite] == "").to_numpy()  # few rows: compare only those
    reason[infinite] = [f"{name} {v!r} is not a finite number"
                        for v in raw[infinite].astype(str).str.strip()]
    return values


def _parsed_numbers(raw: pd.Series, name: str, reason: Any) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(raw):  # already numbers (a DataFrame, not a file)
        values = raw.to_numpy(dtype=np.float64)
        missing = np.isnan(values)
        missing[missing] = reason.to_numpy()[missing] == ""  # compare only those rows
        reason[missing] = "missing coordinates"
        return values
    # to_numeric skips surrounding blanks itself; only the failures need the text stripped.
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    failed = np.isnan(values)
    text_values = raw[failed].astype(str).str.strip()
    free = np.zeros(len(raw), dtype=bool)
    free[failed] = (reason[failed] == "").to_numpy()  # only failed rows can get a reason
    empty = np.zeros(len(raw), dtype=bool)
    empty[failed] = (text_values == "").to_numpy()
    empty &= free
    reason[empty] = "missing coordinates"
    bad = failed & ~empty & free
    reason[bad] = [f"{name} {v!r} is not a number" for v in text_values[bad[failed]]]
    return values


def prepare(frame: pd.DataFrame, *, default_crs: str = "wgs84",
            settings: RoutingSettings, city: CitySettings,
            now: datetime | None = None) -> pd.DataFrame:
    """Per-row checks and WGS84 conversion: lon, lat, local time, codes and a `reason` column."""
    default_crs = normalise_crs(default_crs)
    cols = _resolve_columns(frame)
    n = len(frame)
    # Any: pandas-stubs has no overload for boolean-mask assignment of a list.
    reason: Any = pd.Series([""] * n, index=frame.index, dtype=object)

    # Text columns stay coded (CodedTexts): every check below runs per distinct value.
    def column(key: str, default: str = "") -> CodedTexts:
        if key in cols:
            return CodedTexts.of(frame[cols[key]]).map(lambda v: v.astype(str).str.strip())
        return CodedTexts.constant(default, frame.index)

    x = _numbers(frame[cols["x"]], "x", reason)
    y = _numbers(frame[cols["y"]], "y", reason)
    # Rows without a reason yet, kept as a mask: comparing a million texts to "" after
    # every check cost seconds. So far only rows without finite x and y can have one.
    free = np.ones(n, dtype=bool)
    maybe = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    free[maybe] = reason.to_numpy()[maybe] == ""

    def refuse(rows: np.ndarray, messages: Any) -> None:
        reason[rows] = messages
        free[rows] = False

    crs_text = column("crs")
    crs = crs_text.map(lambda v: v.str.lower().str.replace("-", "").str.replace("_", "")
                       .replace("", default_crs))
    tag_codes, crs_tags = pd.factorize(crs.values)  # a handful of tags: compare codes, not texts
    crs_codes = tag_codes[crs.codes]
    unknown = ~np.isin(crs_codes, np.flatnonzero(pd.Index(crs_tags).isin(SUPPORTED_CRS))) & free
    refuse(unknown, [f"unknown coordinate system {c!r}" for c in crs_text.at(unknown)])
    in_range: Any = valid_lonlat(x, y)
    bad_range = ~in_range & np.isfinite(x) & np.isfinite(y) & free
    refuse(bad_range, [f"({a}, {b}) is not lon/lat" for a, b in zip(x[bad_range], y[bad_range],
                                                                    strict=True)])
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    for code, tag in enumerate(crs_tags):
        rows = free & (crs_codes == code)
        if tag in SUPPORTED_CRS and rows.any():
            lon[rows], lat[rows] = to_wgs84_many(x[rows], y[rows], tag)
    outside_china = free & ~np.asarray(in_china(lon, lat), dtype=bool)
    refuse(outside_china, [f"({a:.6f}, {b:.6f}) is outside China" for a, b in
                           zip(lon[outside_china], lat[outside_china], strict=True)])
    x1, y1, x2, y2 = city.bbox
    # The snap distance may reach a little past the bbox; widen it by that much.
    pad = settings.max_snap_m / 80_000.0
    outside_city = free & ~((lon >= x1 - pad) & (lon <= x2 + pad) & (lat >= y1 - pad)
                            & (lat <= y2 + pad))
    refuse(outside_city, [f"({a:.6f}, {b:.6f}) is outside {city.name}" for a, b in
                          zip(lon[outside_city], lat[outside_city], strict=True)])

    at_text = column("at")
    # Hotline exports mix times with and without an offset; pandas refuses to parse such a
    # column at once, so the two kinds are parsed apart and the aware ones put in city time.
    # Per distinct text: exports repeat their times (and the regex costs seconds per million);
    # each distinct text is parsed once ("mixed" reads every value on its own).
    texts = pd.Series(at_text.values, dtype=object)
    aware = pd.Series(texts.str.contains(r"(?:[Zz]|[+-]\d{2}:?\d{2})$", regex=True)
                      .to_numpy()).astype(bool)
    has_value = (texts != "").to_numpy(dtype=bool)
    parsed_values = pd.to_datetime(texts.where(has_value & ~aware), errors="coerce",
                                   format="mixed")
    if aware.any():
        with_offset = pd.to_datetime(texts.where(aware), errors="coerce", format="mixed",
                                     utc=True)
        parsed_values = parsed_values.where(~aware, with_offset.dt.tz_convert(
            settings.timezone).dt.tz_localize(None))
    parsed = pd.Series(parsed_values.to_numpy()[at_text.codes], index=frame.index)
    has_time = has_value[at_text.codes]
    bad_time = parsed.isna().to_numpy() & has_time & free
    refuse(bad_time, [f"time {t!r} is not a date and time" for t in at_text.at(bad_time)])
    # An export without times is routed as of now (the owner of today).
    local = parsed.dt.as_unit("us").fillna(pd.Timestamp(local_now(settings, now)).as_unit("us"))

    ctype = column("category_type", "event").map(lambda v: v.str.lower().replace("", "event"))
    bad_type = ~ctype.test(lambda v: v.isin(["event", "component"])) & free
    refuse(bad_type, [f"category_type {t!r} must be event or component"
                      for t in ctype.at(bad_type)])
    ccode = column("category_code")
    bad_code = ~ccode.test(lambda v: (v == "") | v.str.match(CATEGORY_CODE.pattern)) & free
    refuse(bad_code, [f"category_code {c!r} must be 4 digits" for c in ccode.at(bad_code)])
    comp = column("component_code")
    bad_comp = ~comp.test(lambda v: (v == "") | v.str.match(COMPONENT_CODE.pattern)) & free
    refuse(bad_comp, [f"component_code {c!r} must be 16 digits" for c in comp.at(bad_comp)])
    is_component = ctype.test(lambda v: v == "component")
    by_class = is_component & ccode.test(lambda v: v.isin([STREETLIGHT_CLASS, *COVER_CLASSES]))
    link_class = ccode.series().where(by_class, "")
    return pd.DataFrame({
        "lon": lon, "lat": lat, "local": local, "category_type": ctype.series(),
        "category_code": ccode.series(), "component_code": comp.series(),
        "link_class": link_class, "reason": reason,
        # Rows the component step links (a class or a component code): found by code here,
        # where comparing a million texts to "" later cost tens of milliseconds.
        "linked": by_class | comp.test(lambda v: v != ""),
    }, index=frame.index)


def local_now(settings: RoutingSettings, now: datetime | None = None) -> datetime:
    """The current (or given) time as naive city time."""
    moment = now or datetime.now(settings.tz)
    return moment.astimezone(settings.tz).replace(tzinfo=None) if moment.tzinfo else moment
