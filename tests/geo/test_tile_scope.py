"""The per-process tile caches and ETags are kept apart per viewer scope."""

from __future__ import annotations

from api.routes.tiles import _scope
from gis.access.auth import User


def test_district_staff_grid_owners_and_city_staff_have_their_own_scope() -> None:
    city = User(1, "a", "dispatcher")
    lixia = User(2, "b", "dispatcher", district_code="370102")
    shizhong = User(3, "c", "dispatcher", district_code="370103")
    owner = User(4, "d", "grid_owner", owner_name="甲中队")
    scopes = {_scope(u) for u in (city, lixia, shizhong, owner)}
    assert len(scopes) == 4
    assert _scope(User(5, "e", "analyst")) == _scope(city) == "staff"
