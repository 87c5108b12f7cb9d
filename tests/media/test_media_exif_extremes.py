"""A photo's EXIF time at the calendar's edges is unknown, not a stored value no read survives.

`0001:01:01 00:00:00` (a phone whose clock was reset) with OffsetTimeOriginal `+14:00` is a
moment before year 1 in UTC; PostgreSQL keeps it (as BC) but the driver cannot read it back, so
every later list of the case's photos answered 500. Offsets PostgreSQL refuses (past ±15:59)
made the upload itself fail.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from PIL import Image

from gis.media.images import EXIF_IFD, OFFSET_TIME_ORIGINAL
from tests.media.test_case_media import case, client, media_settings, upload  # noqa: F401


def jpeg_taken(raw: str, offset: str | None) -> bytes:
    image = Image.new("RGB", (64, 48), "orange")
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[36867] = raw
    if offset is not None:
        exif.get_ifd(EXIF_IFD)[OFFSET_TIME_ORIGINAL] = offset
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


@pytest.mark.parametrize(("raw", "offset"), [
    ("0001:01:01 00:00:00", "+14:00"),
    ("0001:01:01 00:00:00", None),
    ("9999:12:31 23:59:59", "-14:00"),
    ("1800:01:01 00:00:00", "+08:00"),
    ("2026:12:03 09:30:00", "+23:59"),
])
def test_exif_time_at_the_edges_leaves_the_case_readable(client, case, raw, offset):  # noqa: F811
    answer = upload(client, case.id, jpeg_taken(raw, offset))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    if not raw.startswith("2026"):
        assert body["taken_at"] is None
        assert "no_exif_time" in body["flags"]
    if offset == "+23:59":  # an impossible offset is dropped: the city's time, as without one
        taken = dt.datetime.fromisoformat(body["taken_at"].replace("Z", "+00:00"))
        assert taken == dt.datetime(2026, 12, 3, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    listed = client.get(f"/cases/{case.id}/media")
    assert listed.status_code == 200, listed.text
    assert [m["id"] for m in listed.json()] == [body["id"]]
