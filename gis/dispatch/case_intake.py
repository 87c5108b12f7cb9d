"""Where a new case goes: a point (any supported CRS) or an address text, placed like `POST /route`.

The dispatcher's desk, `POST /cases` and Open311 all place a complaint the same way the routing
service does, so a point the desk routed can always be filed:

* **Coordinates** are routed by `route_point`: inside a grid, or snapped to the nearest grid
  within `max_snap_m` (the case records `snapped` and the metres).
* **An address without coordinates** is geocoded by `gis.geocoding.service.geocode`; a best
  candidate at or above its confidence threshold is routed as above and the case keeps the
  text as typed, the match level and the score. Below the threshold the complaint is refused
  with `AddressNotLocatedError` naming the address and what the geocoder found, and nothing
  is written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from gis.dispatch.routing import RouteResult, route_point
from gis.dispatch.routing_settings import RoutingSettings
from gis.geocoding.service import CONFIDENT_SCORE, geocode
from gis.platform.errors import InvalidInputError
from gis.platform.settings import CitySettings

MAX_ADDRESS_CHARS = 500  # cases.address CHECK (migration 0020)


class AddressNotLocatedError(InvalidInputError):
    """The address could not be placed confidently: the complaint needs coordinates."""


@dataclass(frozen=True)
class PlacedComplaint:
    """A complaint's place: the routed point, and how it was found from an address if it was."""

    route: RouteResult
    address: str | None = None
    geocode_level: str | None = None
    geocode_score: float | None = None
    geocode_note: str | None = None

    # What gis.dispatch.cases.create_case reads from the routed point.
    @property
    def lon(self) -> float:
        """Longitude in WGS84."""
        return self.route.lon

    @property
    def lat(self) -> float:
        """Latitude in WGS84."""
        return self.route.lat

    @property
    def grid_code(self) -> str | None:
        """Unit grid of the point (the snapped grid when it lies just outside)."""
        return self.route.grid_code

    @property
    def snapped(self) -> bool:
        """True when the point lies in no grid and was placed in the nearest one."""
        return self.route.snapped

    @property
    def snap_distance_m(self) -> float:
        """Metres from the point to the grid it was snapped to (0 inside a grid)."""
        return self.route.snap_distance_m


def check_address(address: str | None) -> str | None:
    """The address stripped, None when blank; InvalidInputError when too long to store."""
    if address is None or not address.strip():
        return None
    address = address.strip()
    if len(address) > MAX_ADDRESS_CHARS:
        raise InvalidInputError(f"the address has {len(address)} characters; at most "
                                f"{MAX_ADDRESS_CHARS} are kept")
    return address


def place_complaint(session: Session, *, x: float | None, y: float | None, crs: str = "wgs84",
                    address: str | None = None, at: dt.datetime, category_type: str,
                    category_code: str | None, component_code: str | None = None,
                    routing: RoutingSettings, city: CitySettings) -> PlacedComplaint:
    """Route the complaint's point, or geocode its address when no point is given."""
    address = check_address(address)
    if x is not None and y is not None:
        routed = route_point(session, x=x, y=y, crs=crs, at=at, category_type=category_type,
                             category_code=category_code, component_code=component_code,
                             settings=routing, city=city)
        return PlacedComplaint(route=routed, address=address)
    if x is not None or y is not None:
        raise InvalidInputError("give both coordinates (x and y) or neither (and an address)")
    if address is None:
        raise InvalidInputError("a complaint needs coordinates (x, y) or an address")
    found = geocode(session, address, city=city, limit=1)
    best = found.candidates[0] if found.candidates else None
    if best is None or not found.confident:
        raise AddressNotLocatedError(
            f"地址无法定位：{address!r}（{found.message}）；请补充门牌号或地标，或给出坐标 / "
            f"the address could not be located with confidence (score "
            f"{best.score if best else 0:.2f} < {CONFIDENT_SCORE}); give coordinates")
    routed = route_point(session, x=best.lon, y=best.lat, crs="wgs84", at=at,
                         category_type=category_type, category_code=category_code,
                         component_code=component_code, settings=routing, city=city)
    return PlacedComplaint(route=routed, address=address, geocode_level=best.level,
                           geocode_score=round(best.score, 3),
                           geocode_note=f"{best.name}（{best.why}）")
