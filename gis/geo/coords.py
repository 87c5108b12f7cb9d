"""Complaint coordinates to WGS84: GCJ-02 (WeChat, AMap, Tencent), BD-09 (Baidu), CGCS2000.

PROJ knows neither GCJ-02 nor BD-09, so the widely published algorithms are used: the
Krasovsky-ellipsoid offset WGS84 -> GCJ-02 (applied only inside China, like the apps do) and
the fixed rotation GCJ-02 -> BD-09. Neither has a closed-form inverse; inverses iterate the
forward formula until the error is below 1e-9 degrees (~0.1 mm).

CGCS2000 is taken as WGS84 without a shift: the two frames differ by centimetres in China
(both are ITRF-aligned geocentric frames, epochs 2000.0 vs the current realisation), far below
the metre-level accuracy of a phone position or a city-management survey.

Every function takes scalars or numpy arrays and returns float64 arrays (or floats for scalars).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from gis.platform.errors import CrsMismatchError, InvalidInputError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ArrayLike = float | npt.ArrayLike

SUPPORTED_CRS: Final = ("wgs84", "gcj02", "bd09", "cgcs2000")

# Krasovsky 1940 ellipsoid: the GCJ-02 algorithm is defined on it, not on WGS84's.
_A: Final = 6378245.0
_EE: Final = 0.00669342162296594323
_X_PI: Final = np.pi * 3000.0 / 180.0
# The rectangle the published algorithm treats as "China"; outside it GCJ-02 == WGS84.
_CHINA: Final = (72.004, 0.8293, 137.8347, 55.8271)
_TOLERANCE: Final = 1e-9
_MAX_ITERATIONS: Final = 30


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def _out(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    # 0-d arrays become floats so scalar callers get scalars back.
    if lon.ndim == 0:
        return float(lon), float(lat)  # type: ignore[return-value]
    return lon, lat


def in_china(lon: ArrayLike, lat: ArrayLike) -> BoolArray:
    """Boolean mask: inside the rectangle where the GCJ-02 offset applies."""
    x, y = _as_arrays(lon, lat)
    x1, y1, x2, y2 = _CHINA
    return (x >= x1) & (x <= x2) & (y >= y1) & (y <= y2)  # type: ignore[no-any-return]


def _gcj_delta(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    x, y = lon - 105.0, lat - 35.0
    wave = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    d_lat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
             + wave
             + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
             + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    d_lon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
             + wave
             + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
             + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    d_lat = d_lat * 180.0 / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    d_lon = d_lon * 180.0 / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    inside = in_china(lon, lat)
    return np.where(inside, d_lon, 0.0), np.where(inside, d_lat, 0.0)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 of WGS84 lon/lat; unchanged outside China."""
    x, y = _as_arrays(lon, lat)
    dx, dy = _gcj_delta(x, y)
    return _out(x + dx, y + dy)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """BD-09 of GCJ-02 lon/lat."""
    x, y = _as_arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return _out(z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006)


def _invert(forward, lon: FloatArray, lat: FloatArray,  # type: ignore[no-untyped-def]
            guess: tuple[FloatArray, FloatArray]) -> tuple[FloatArray, FloatArray]:
    # Fixed-point iteration: the forward maps are near-translations (Jacobian ~ identity), so
    # subtracting the residual converges geometrically, in 3-5 steps here.
    x, y = guess
    for _ in range(_MAX_ITERATIONS):
        fx, fy = forward(x, y)
        ex, ey = np.asarray(fx) - lon, np.asarray(fy) - lat
        x, y = x - ex, y - ey
        if np.nanmax(np.abs(np.concatenate([np.ravel(ex), np.ravel(ey)])),
                     initial=0.0) < _TOLERANCE:
            break
    return x, y


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS84 of GCJ-02 lon/lat by iteration to 1e-9 degrees; unchanged outside China."""
    x, y = _as_arrays(lon, lat)
    dx, dy = _gcj_delta(x, y)
    return _out(*_invert(wgs84_to_gcj02, x, y, (x - dx, y - dy)))


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 of BD-09 lon/lat by iteration to 1e-9 degrees."""
    x, y = _as_arrays(lon, lat)
    bx, by = x - 0.0065, y - 0.006
    z = np.sqrt(bx * bx + by * by) - 0.00002 * np.sin(by * _X_PI)
    theta = np.arctan2(by, bx) - 0.000003 * np.cos(bx * _X_PI)
    return _out(*_invert(gcj02_to_bd09, x, y, (z * np.cos(theta), z * np.sin(theta))))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """WGS84 of BD-09 lon/lat (via GCJ-02)."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """BD-09 of WGS84 lon/lat (via GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def normalise_crs(crs: str) -> str:
    """The canonical tag of `crs` ('WGS84', 'gcj-02', ...); CrsMismatchError naming it."""
    tag = str(crs).strip().lower().replace("-", "").replace("_", "")
    if tag not in SUPPORTED_CRS:
        raise CrsMismatchError(
            f"unknown coordinate system {crs!r}; use one of {', '.join(SUPPORTED_CRS)}")
    return tag


def valid_lonlat(lon: ArrayLike, lat: ArrayLike) -> BoolArray:
    """Boolean mask: finite and within lon -180..180, lat -90..90."""
    x, y = _as_arrays(lon, lat)
    with np.errstate(invalid="ignore"):
        return (np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180)  # type: ignore[no-any-return]
                & (np.abs(y) <= 90))


def to_wgs84_many(lon: ArrayLike, lat: ArrayLike, crs: str) -> tuple[FloatArray, FloatArray]:
    """WGS84 of many points in one CRS; invalid inputs come back as NaN (check valid_lonlat)."""
    tag = normalise_crs(crs)
    x, y = _as_arrays(lon, lat)
    ok = valid_lonlat(x, y)
    x, y = np.where(ok, x, np.nan), np.where(ok, y, np.nan)
    if tag == "gcj02":
        x, y = gcj02_to_wgs84(x, y)
    elif tag == "bd09":
        x, y = bd09_to_wgs84(x, y)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def to_wgs84(x: float, y: float, crs: str = "wgs84") -> tuple[float, float]:
    """WGS84 lon/lat of one point given in `crs`; InvalidInputError naming a bad value."""
    tag = normalise_crs(crs)
    for name, value, limit in (("x (longitude)", x, 180), ("y (latitude)", y, 90)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{name} {value!r} is not a number") from None
        if not np.isfinite(number) or abs(number) > limit:
            raise InvalidInputError(f"{name} {value!r} is not a {tag} coordinate "
                                    f"(must be finite and within ±{limit}°)")
    lon, lat = to_wgs84_many(float(x), float(y), tag)
    return float(lon), float(lat)
