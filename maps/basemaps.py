"""Base maps for the public page: none (offline outlines), OpenStreetMap, Tianditu, AMap.

Staff maps (`staff_base_for`) draw the city's own vector base map (/tiles/basemap), unless a
tile mirror is configured (StaffMapSettings): then its raster tiles, shifted for GCJ-02.

Each base map says in which datum its tiles are drawn. Tianditu is CGCS2000 (equal to WGS84
at map scale), OSM is WGS84, AMap is GCJ-02: data drawn on AMap must be shifted WGS84 ->
GCJ-02 first or it lands several hundred metres off. `none` needs no network at all and is the
default; the others fetch tiles from the internet, chosen explicitly in PublicMapSettings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gis.geo.coords import wgs84_to_gcj02
from gis.platform.settings import PublicMapSettings, StaffMapSettings


@dataclass(frozen=True)
class TileSource:
    """One tile layer: URL template, subdomains, attribution, zoom limit."""

    url: str
    subdomains: str = ""
    attribution: str = ""
    max_zoom: int = 18


@dataclass(frozen=True)
class BaseMap:
    """A base map: its name, tile layers (bottom first) and the datum its tiles use."""

    id: str
    name_zh: str
    crs: str  # "wgs84" or "gcj02": the datum features must be in to line up with the tiles
    tiles: tuple[TileSource, ...] = field(default_factory=tuple)


_TIANDITU = ("https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
             "&VERSION=1.0.0&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
             "&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}")


def basemap_for(settings: PublicMapSettings) -> BaseMap:
    """The base map `settings` choose; a tile_url replaces the public servers (local mirror)."""
    choice = settings.basemap
    if choice == "none":
        return BaseMap("none", "无底图（行政区轮廓）", "wgs84")
    if choice == "osm":
        tiles: tuple[TileSource, ...] = (TileSource(
            "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
            attribution="© OpenStreetMap 贡献者", max_zoom=19),)
        name, crs = "OpenStreetMap", "wgs84"
    elif choice == "tianditu":
        key = settings.tianditu_key or ""
        tiles = tuple(TileSource(_TIANDITU.format(s="{s}", layer=layer, key=key),
                                 subdomains="01234567", attribution="© 天地图", max_zoom=18)
                      for layer in ("vec", "cva"))  # streets, then Chinese labels on top
        name, crs = "天地图", "wgs84"  # CGCS2000: no shift at map scale
    else:
        tiles = (TileSource("https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1"
                            "&scale=1&style=8&x={x}&y={y}&z={z}", subdomains="1234",
                            attribution="© 高德地图", max_zoom=18),)
        name, crs = "高德地图", "gcj02"
    if settings.tile_url:
        tiles = (TileSource(settings.tile_url, attribution=tiles[0].attribution,
                            max_zoom=tiles[0].max_zoom),)
    return BaseMap(choice, name, crs, tiles)


BASEMAP_TILE_URL = "/tiles/basemap/{z}/{x}/{y}.pbf"


@dataclass(frozen=True)
class StaffBase:
    """The staff maps' background: the city's vector base map, or a configured tile mirror."""

    name_zh: str
    url: str
    kind: str = "city"  # "city" (vector tiles from the app) or "mirror" (raster tiles)
    labels_url: str | None = None
    subdomains: str = ""
    max_zoom: int = 18
    attribution: str = ""
    # GCJ-02 mirror: (dlon, dlat) from WGS84 to GCJ-02 at the city centre; the page moves the
    # tiles back by it (the offset varies by well under a metre across a district).
    shift: tuple[float, float] | None = None

    def config(self) -> dict[str, object]:
        """What the page script needs, as JSON-ready values."""
        return {"kind": self.kind, "name": self.name_zh, "url": self.url,
                "labelsUrl": self.labels_url, "subdomains": self.subdomains,
                "maxZoom": self.max_zoom, "attribution": self.attribution,
                "shift": list(self.shift) if self.shift else None}


def staff_base_for(settings: StaffMapSettings, *, center: tuple[float, float]) -> StaffBase:
    """The offline city base map, or the mirror `settings` name (shifted when GCJ-02)."""
    if not settings.tile_url:
        return StaffBase("城市底图（离线）", BASEMAP_TILE_URL)
    shift = None
    if settings.tile_datum == "gcj02":
        lat, lon = center
        glon, glat = wgs84_to_gcj02(lon, lat)
        shift = (float(glon) - lon, float(glat) - lat)
    return StaffBase("瓦片底图（" + ("高德" if shift else "天地图") + "镜像）", settings.tile_url,
                     kind="mirror", labels_url=settings.tile_labels_url,
                     subdomains=settings.tile_subdomains, max_zoom=settings.tile_max_zoom,
                     attribution=settings.tile_attribution, shift=shift)
