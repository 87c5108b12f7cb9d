"""A zip-bomb .xlsx for batch routing is refused by its unpacked size before pandas reads it.

An .xlsx is a zip, and the 50 MB upload limit says nothing about what it unpacks to: pandas
read the whole sheet XML into memory (a deflated 50 MB can unpack to about 50 GB). The limit
is lowered here so the bomb stays small; its member is zeros, which openpyxl would refuse as
XML only after unpacking all of it.
"""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest

from gis.dispatch import batch_input
from gis.platform.errors import InvalidInputError


def test_an_xlsx_that_unpacks_past_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(batch_input, "MAX_XLSX_UNPACKED_MB", 2, raising=False)
    bomb = tmp_path / "points.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (3 * 1024 * 1024))
    assert bomb.stat().st_size < 50_000
    with pytest.raises(InvalidInputError, match="unpacks to 3 MB, over 2 MB"):
        batch_input.read_table(bomb)


def test_an_ordinary_xlsx_is_read(tmp_path):
    sheet = tmp_path / "points.xlsx"
    out = io.BytesIO()
    pd.DataFrame({"x": ["117.05"], "y": ["36.66"]}).to_excel(out, index=False)
    sheet.write_bytes(out.getvalue())
    frame = batch_input.read_table(sheet)
    assert frame.to_dict("records") == [{"x": "117.05", "y": "36.66"}]
