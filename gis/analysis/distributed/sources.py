"""Where a partition (one month of cases) is read from: the archive or PostGIS.

Sources are small picklable values: a dask worker receives one and reads its month itself, so
the data never passes through the scheduler.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import URL, make_url

from gis.analysis.distributed.archive import (
    Month,
    archive_months,
    month_path,
    read_month,
    read_month_from_db,
)
from gis.platform.db import database_url, make_engine, transaction
from gis.platform.errors import InvalidInputError
from gis.platform.settings import Settings


@dataclass(frozen=True)
class ArchiveSource:
    """Monthly GeoParquet files under `root` (a path every worker sees)."""

    root: Path

    def months(self) -> list[Month]:
        """Months present, in order."""
        return list(archive_months(self.root))

    def read(self, month: Month, columns: list[str], *, points: bool = False) -> pd.DataFrame:
        """`columns` of the month's cases (and lon, lat with `points`)."""
        path = month_path(self.root, month)
        if not path.exists():
            raise InvalidInputError(f"the archive {self.root} has no file for "
                                    f"{month[0]:04d}-{month[1]:02d}")
        return read_month(path, columns, points=points)


@dataclass(frozen=True)
class DatabaseSource:
    """The cases table, one month per query. `url` unset: each worker's own settings."""

    url: str | None = None

    def engine_url(self) -> URL:
        """The database to read."""
        return make_url(self.url) if self.url else database_url(Settings(), start=False)

    def read(self, month: Month, columns: list[str], *, points: bool = False) -> pd.DataFrame:
        """`columns` of the month's cases (and lon, lat with `points`)."""
        engine = make_engine(self.engine_url(), pool_size=1)
        try:
            with transaction(engine) as session:
                frame = read_month_from_db(session, month)
        finally:
            engine.dispose()
        return frame[[*columns, *(["lon", "lat"] if points else [])]]


Source = ArchiveSource | DatabaseSource


def china_periods(reported: pd.Series, kind: str) -> pd.Series:
    """Label of the month, quarter or year (China time) of each timestamp."""
    local = reported.dt.tz_convert("Asia/Shanghai")
    year = local.dt.year.astype(str)
    if kind == "year":
        return year
    if kind == "quarter":
        return year + "Q" + ((local.dt.month - 1) // 3 + 1).astype(str)
    if kind == "month":
        return year + "-" + local.dt.month.astype(str).str.zfill(2)
    raise InvalidInputError(f"unknown period {kind!r}; expected month, quarter or year")


def period_of(month: Month, kind: str) -> str:
    """The label `china_periods` gives the timestamps of `month`.

    Examples
    --------
    >>> period_of((2024, 5), "quarter"), period_of((2024, 5), "month")
    ('2024Q2', '2024-05')
    """
    stamp = pd.Series([pd.Timestamp(dt.datetime(month[0], month[1], 1, 12), tz="UTC")])
    return str(china_periods(stamp, kind).iloc[0])
