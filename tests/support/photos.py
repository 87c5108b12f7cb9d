"""Test photos built with Pillow: JPEG with EXIF time and GPS, PNG, HEIC, a decompression bomb."""

from __future__ import annotations

import datetime as dt
import io
import struct
import zlib

from PIL import Image

EXIF_IFD, GPS_IFD = 0x8769, 0x8825


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, 4)
    return (float(degrees), float(minutes), seconds)


def jpeg_with_exif(*, lon: float | None, lat: float | None, taken: dt.datetime | None,
                   size: tuple[int, int] = (640, 480), color: str = "orange") -> bytes:
    """A JPEG whose EXIF holds DateTimeOriginal (local time) and a WGS84 GPS position."""
    image = Image.new("RGB", size, color)
    exif = Image.Exif()
    exif[0x010F] = "TestPhone"  # Make
    exif[0x0110] = "TP-1"  # Model
    if taken is not None:
        exif.get_ifd(EXIF_IFD)[36867] = taken.strftime("%Y:%m:%d %H:%M:%S")
    if lon is not None and lat is not None:
        gps = exif.get_ifd(GPS_IFD)
        gps[1] = "N" if lat >= 0 else "S"
        gps[2] = _dms(lat)
        gps[3] = "E" if lon >= 0 else "W"
        gps[4] = _dms(lon)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=90)
    return out.getvalue()


def png(size: tuple[int, int] = (300, 200), color: str = "green") -> bytes:
    """A plain PNG without EXIF."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def heic(size: tuple[int, int] = (320, 240)) -> bytes:
    """A HEIC photo (pillow-heif writes it)."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    out = io.BytesIO()
    Image.new("RGB", size, "blue").save(out, format="HEIF")
    return out.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header declaring width x height pixels (10 gigapixels) in a few hundred bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\x00" * (1 + width // 8) * 64, 9)  # first rows only
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows)
            + chunk(b"IEND", b""))
