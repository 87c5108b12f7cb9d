"""Uploaded zips (.xlsx workbooks, zipped shapefiles) bounded by what they unpack to.

The upload limit bounds the zip, not its contents: deflate packs about 1,000:1, so 50 MB of
upload can unpack to 50 GB that pandas or GDAL would read. The sizes a zip declares bound
what zipfile (and GDAL's /vsizip/) will unpack from each member, so they are summed first.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from gis.platform.errors import InvalidInputError


def check_unpacked_size(path: Path, *, limit_mb: float, advice: str) -> None:
    """InvalidInputError when the zip at `path` unpacks to more than `limit_mb` MB."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except zipfile.BadZipFile:
        return  # not a zip: the reader that follows names the problem
    if unpacked > limit_mb * 1024 * 1024:
        raise InvalidInputError(
            f"{path.name}: the file unpacks to {unpacked / 1024 / 1024:,.0f} MB, over "
            f"{limit_mb:,.0f} MB; {advice}")
