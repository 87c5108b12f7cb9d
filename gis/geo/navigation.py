"""Hand-off links to a phone's map app: `geo:` (WGS84), AMap (GCJ-02) and Baidu (BD-09).

Chinese map apps expect their own datum: a WGS84 point given to AMap as is lands ~300-500 m
off in Jinan, so each link carries the point converted by gis.geo.coords.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from gis.geo.coords import gcj02_to_bd09, wgs84_to_gcj02


@dataclass(frozen=True)
class NavLinks:
    """Where to send the phone to navigate to one point."""

    geo: str
    amap: str
    baidu: str
    gcj02: tuple[float, float]
    bd09: tuple[float, float]


def navigation_links(lon: float, lat: float, *, label: str) -> NavLinks:
    """Links that open the phone's map apps at the WGS84 point (`label` names the place)."""
    glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    blon, blat = (float(v) for v in gcj02_to_bd09(glon, glat))
    name = quote(label, safe="")
    # RFC 5870 geo URI: latitude first, WGS84 by definition; ?q= shows a pin with the label.
    geo = f"geo:{lat:.6f},{lon:.6f}?q={lat:.6f},{lon:.6f}({name})"
    # AMap's URI API opens the app when installed (callnative=1), else its mobile web page.
    amap = (f"https://uri.amap.com/navigation?to={glon:.6f},{glat:.6f},{name}"
            f"&mode=walk&coordinate=gaode&callnative=1&src=citygrid")
    # Baidu's app scheme; coord_type names the datum of the destination.
    baidu = (f"baidumap://map/direction?destination=latlng:{blat:.6f},{blon:.6f}|name:{name}"
             f"&coord_type=bd09ll&mode=walking&src=citygrid.field")
    return NavLinks(geo, amap, baidu, (round(glon, 6), round(glat, 6)),
                    (round(blon, 6), round(blat, 6)))
