"""The monthly GeoParquet case archive: one file of cases per month reported (China time).

A row is a case as it stands when archived (its final columns; no audit trail), with the
columns the city-wide analyses need. Timestamps are stored in UTC; months follow the wall
clock in China (gis.analysis.common.CHINA_TZ), as reporting periods do.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.analysis.common import CHINA_TZ
from gis.platform.errors import InvalidInputError

TIME_COLUMNS = ("reported_at", "dispatched_at", "due_at", "closed_at", "replied_at",
                "surveyed_at")
# Column order of an archive file (geometry last, EPSG:4326 points).
COLUMNS = ("id", "category_type", "category_code", "channel", "grid_code", "status",
           *TIME_COLUMNS, "satisfaction", "reworked_count", "extended_count", "repeat",
           "supervised")
_FILE = re.compile(r"^cases_(\d{4})-(\d{2})\.parquet$")

Month = tuple[int, int]  # (year, month)


def month_bounds(month: Month) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a month in China time.

    Examples
    --------
    >>> [t.isoformat() for t in month_bounds((2024, 12))]
    ['2024-12-01T00:00:00+08:00', '2025-01-01T00:00:00+08:00']
    """
    year, number = month
    if not 1 <= number <= 12:
        raise InvalidInputError(f"month {number!r} is not 1-12")
    start = dt.datetime(year, number, 1, tzinfo=CHINA_TZ)
    end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=CHINA_TZ)
    return start, end


def months_between(first: Month, last: Month) -> list[Month]:
    """Months from `first` to `last`, both included.

    Examples
    --------
    >>> months_between((2023, 11), (2024, 2))
    [(2023, 11), (2023, 12), (2024, 1), (2024, 2)]
    """
    out: list[Month] = []
    year, number = first
    while (year, number) <= last:
        out.append((year, number))
        year, number = (year + 1, 1) if number == 12 else (year, number + 1)
    return out


def month_path(root: Path, month: Month) -> Path:
    """The archive file of `month` under `root`."""
    return Path(root) / f"cases_{month[0]:04d}-{month[1]:02d}.parquet"


def archive_months(root: Path) -> dict[Month, Path]:
    """Month -> file of every month present in the archive at `root`, in order."""
    found = {}
    for path in sorted(Path(root).glob("cases_*.parquet")):
        match = _FILE.match(path.name)
        if match:
            found[(int(match[1]), int(match[2]))] = path
    return found


def write_month(frame: gpd.GeoDataFrame, root: Path, month: Month) -> Path:
    """Write one month of cases (columns `COLUMNS` and a point geometry) as GeoParquet."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"archive rows lack columns {', '.join(missing)}")
    path = month_path(root, month)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written to a temporary name and renamed: a reader never sees half a month.
    partial = path.with_suffix(".parquet.partial")
    # GeoParquet 1.1 native point encoding (x, y columns): partitions are read without
    # parsing WKB, which was most of a month's read time.
    frame[[*COLUMNS, "geometry"]].to_parquet(partial, index=False, compression="zstd",
                                             row_group_size=256_000,
                                             geometry_encoding="geoarrow")
    partial.replace(path)
    return path


def read_month(path: Path, columns: list[str] | None = None,
               *, points: bool = False) -> pd.DataFrame:
    """Columns of one archive file; with `points`, lon and lat of each case too."""
    wanted = list(columns or COLUMNS)
    if not points:
        return pd.read_parquet(path, columns=wanted)
    table = pq.read_table(path, columns=[*wanted, "geometry"])
    geometry = table.column("geometry").combine_chunks()
    frame = table.drop_columns(["geometry"]).to_pandas()
    if pa.types.is_struct(geometry.type):  # geoarrow points
        return frame.assign(lon=geometry.field("x").to_numpy(zero_copy_only=False),
                            lat=geometry.field("y").to_numpy(zero_copy_only=False))
    coords = shapely.get_coordinates(shapely.from_wkb(geometry.to_numpy(zero_copy_only=False)))
    return frame.assign(lon=coords[:, 0], lat=coords[:, 1])


_MONTH_SQL = """
SELECT c.id, c.category_type, c.category_code, c.channel, c.grid_code, c.status,
       c.reported_at, c.dispatched_at, c.due_at, c.closed_at, c.replied_at, c.surveyed_at,
       c.satisfaction, c.reworked_count, c.extended_count, c.repeat_of IS NOT NULL AS repeat,
       c.supervised, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat
FROM cases c
WHERE c.reported_at >= :start AND c.reported_at < :end
ORDER BY c.id
"""


def read_month_from_db(session: Session, month: Month) -> pd.DataFrame:
    """One month of the cases table as archive rows (with lon, lat instead of geometry)."""
    start, end = month_bounds(month)
    rows = session.execute(text(_MONTH_SQL), {"start": start, "end": end}).all()
    frame = pd.DataFrame(rows, columns=[*COLUMNS, "lon", "lat"])
    for column in TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.astype({"repeat": bool, "supervised": bool, "reworked_count": int,
                         "extended_count": int})


def export_month(session: Session, root: Path, month: Month) -> Path:
    """Archive one month of the cases table to `root` (the rows `read_month_from_db` reads)."""
    frame = read_month_from_db(session, month)
    geometry = gpd.points_from_xy(frame.pop("lon"), frame.pop("lat"), crs=4326)
    return write_month(gpd.GeoDataFrame(frame, geometry=geometry), root, month)
