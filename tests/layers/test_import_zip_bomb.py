"""A zipped shapefile that unpacks past MAX_ZIP_UNPACKED_MB is refused before GDAL reads it.

The upload limit bounds the zip, not what GDAL unpacks from it (about 1,000:1 for deflate).
The limit is lowered here so the bomb stays small.
"""

from __future__ import annotations

import zipfile

import pytest

from gis.platform.errors import InvalidInputError
from layers import transfer_read
from layers.registry import LAYERS


def test_a_zip_that_unpacks_past_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer_read, "MAX_ZIP_UNPACKED_MB", 2, raising=False)
    bomb = tmp_path / "lights.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("lights.dbf", b"\0" * (3 * 1024 * 1024))
        archive.writestr("lights.shp", b"\0" * 100)
    assert bomb.stat().st_size < 50_000
    with pytest.raises(InvalidInputError, match="unpacks to 3 MB, over 2 MB"):
        transfer_read.read_vector(bomb, source_layer=None, spec=LAYERS["streetlights"])
