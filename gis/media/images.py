"""Photos from bytes: sniffed type, safe decoding, EXIF time and GPS, thumbnails, public copies.

The type comes from the file's first bytes, never from its name or the client's Content-Type.
A decompression bomb (a few MB of PNG declaring a picture of billions of pixels) is refused by
the header's dimensions before a pixel is decoded. Public copies are drawn from the decoded
pixels into a new image, so no EXIF, GPS, XMP or maker notes can ride along.
"""

from __future__ import annotations

import datetime as dt
import io
import struct
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from gis.media.errors import MediaTooLargeError, UnsupportedMediaError
from gis.platform.errors import InvalidInputError

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
ACCEPTED = "JPEG, PNG or HEIC"
# EXIF tags (CIPA DC-008): IFD pointers, times, GPS.
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATETIME, DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 306, 36867, 36881
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4
# EXIF times outside these years are a reset or forged clock, not when the photo was taken.
EXIF_YEARS = (1900, 2100)
MAX_UTC_OFFSET = dt.timedelta(hours=14)

_heif_ready = False


def _register_heif() -> bool:
    # pillow-heif reads HEIC (iPhones' default); without it HEIC is refused with 415.
    global _heif_ready
    if not _heif_ready:
        try:
            from pillow_heif import register_heif_opener
        except ImportError:
            return False
        register_heif_opener()
        _heif_ready = True
    return True


@dataclass(frozen=True)
class Photo:
    """A decoded, checked photo with what its EXIF says."""

    content_type: str
    extension: str
    width: int
    height: int
    taken_at: dt.datetime | None
    lon: float | None
    lat: float | None
    image: Image.Image


def sniff(data: bytes) -> tuple[str, str]:
    """(content type, extension) of an accepted photo; UnsupportedMediaError naming the type."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg", "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png", "png"
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        if _register_heif():
            return "image/heic", "heic"
        raise UnsupportedMediaError("the file is a HEIC/HEIF image, which this server cannot "
                                    f"read (pillow-heif is not installed); send {ACCEPTED}")
    raise UnsupportedMediaError(f"the file is {describe(data)}, not a {ACCEPTED} photo")


def describe(data: bytes) -> str:
    """A short name for what the bytes are, for the refusal message."""
    signatures = [(b"GIF8", "a GIF image"), (b"%PDF", "a PDF document"),
                  (b"PK\x03\x04", "a ZIP archive (or Office document)"),
                  (b"RIFF", "a RIFF file (WebP, WAV or AVI)"), (b"BM", "a BMP image"),
                  (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
                  (b"\x7fELF", "an ELF executable"), (b"MZ", "a Windows executable"),
                  (b"<svg", "an SVG drawing"), (b"<?xml", "an XML document")]
    for magic, name in signatures:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp":
        return f"an ISO media file (brand {data[8:12].decode('latin-1')!r}, e.g. a video)"
    if not data:
        return "empty"
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of unknown type"
    return "text (text/plain)"


def decode(data: bytes, *, max_pixels: int, draft_px: int | None = None) -> Photo:
    """Open and fully decode a photo, refusing bombs; EXIF time and GPS read when present.

    `draft_px` lets a JPEG decode at a DCT scale (1/2, 1/4, 1/8) still at least that large
    on both sides: every byte is still decoded, but thumbnails and public copies cost a
    fraction of a full-size decode. Width and height stay those of the original.
    """
    content_type, extension = sniff(data)
    with warnings.catch_warnings():
        # Pillow's own bomb warning is replaced by the explicit limit below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise MediaTooLargeError(
                    f"the picture is {width} x {height} pixels ({width * height:,}), over the "
                    f"limit of {max_pixels:,} (CITYGRID_MEDIA_MAX_PIXELS)")
            if draft_px is not None and content_type == "image/jpeg":
                # The box the long side must still fill: (draft_px, draft_px * short / long).
                scale = draft_px / max(width, height)
                if scale < 1:
                    image.draft("RGB", (int(width * scale + 0.999), int(height * scale + 0.999)))
            image.load()
        except Image.DecompressionBombError as exc:
            raise MediaTooLargeError(f"the picture is too large to decode: {exc}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                struct.error, IndexError, KeyError, TypeError, ZeroDivisionError) as exc:
            # Pillow's decoders raise any of these on a damaged or hostile file.
            raise InvalidInputError(f"the {extension.upper()} file cannot be decoded "
                                    f"(damaged or truncated): {exc}") from None
    try:
        exif = image.getexif()
        lon, lat = _gps(exif)
        taken_at = _taken_at(exif)
    except Exception:  # a malformed EXIF block: the photo stands, its EXIF is unknown
        lon = lat = taken_at = None
    return Photo(content_type=content_type, extension=extension, width=width, height=height,
                 taken_at=taken_at, lon=lon, lat=lat, image=image)


def jpeg_copy(image: Image.Image, *, max_px: int, quality: int = 85) -> bytes:
    """An upright JPEG no larger than max_px on its long side, with no metadata at all."""
    return _encode(_upright_rgb(image, max_px), quality)


def derived_copies(image: Image.Image, *, public_px: int, thumb_px: int) -> tuple[bytes, bytes]:
    """(public copy, thumbnail) as metadata-free JPEGs; the thumbnail drawn from the copy.

    Scaling the full photo once and the small copy again costs about half of scaling the
    full photo twice (bench/media.py).
    """
    public = _upright_rgb(image, public_px)
    thumb = public.copy()
    thumb.thumbnail((thumb_px, thumb_px), Image.Resampling.BICUBIC)
    return _encode(public, 85), _encode(thumb, 80)


def _upright_rgb(image: Image.Image, max_px: int) -> Image.Image:
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # a malformed orientation tag: keep the pixels as stored
        upright = image
    upright = upright.convert("RGB")
    # reducing_gap: a cheap integer reduce() first, then BICUBIC for the rest.
    upright.thumbnail((max_px, max_px), Image.Resampling.BICUBIC, reducing_gap=2.0)
    # A new image from the pixels alone: nothing of the original's info dict can follow.
    return Image.frombytes("RGB", upright.size, upright.tobytes())


def _encode(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _taken_at(exif: Image.Exif) -> dt.datetime | None:
    sub = exif.get_ifd(EXIF_IFD)
    raw = sub.get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    if not isinstance(raw, str):
        return None
    try:
        naive = dt.datetime.strptime(raw.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    # A reset clock says year 1 or 9999: PostgreSQL keeps such a moment, but the driver
    # cannot read it back (every list of the case's photos failed), so it is unknown.
    if not EXIF_YEARS[0] <= naive.year <= EXIF_YEARS[1]:
        return None
    offset = sub.get(OFFSET_TIME_ORIGINAL)
    if isinstance(offset, str):
        try:
            aware = dt.datetime.strptime(f"{naive:%Y-%m-%dT%H:%M:%S}{offset.strip()}",
                                         "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            pass
        else:
            # Real offsets lie within ±14:00; PostgreSQL refuses those past ±15:59.
            if abs(aware.utcoffset() or dt.timedelta()) <= MAX_UTC_OFFSET:
                return aware
    # Phone cameras write local time without an offset: the city's time (UTC+8).
    return naive.replace(tzinfo=CHINA_TZ)


def _gps(exif: Image.Exif) -> tuple[float | None, float | None]:
    gps = exif.get_ifd(GPS_IFD)
    try:
        lat = _degrees(gps[GPS_LAT], gps.get(GPS_LAT_REF, "N"), "S")
        lon = _degrees(gps[GPS_LON], gps.get(GPS_LON_REF, "E"), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None, None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None, None
    return lon, lat


def _degrees(value: Any, ref: Any, negative: str) -> float:
    d, m, s = (float(part) for part in value)
    sign = -1 if str(ref).strip("\x00 ").upper() == negative else 1
    return sign * (d + m / 60 + s / 3600)
