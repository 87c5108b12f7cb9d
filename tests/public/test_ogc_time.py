"""/ogc `datetime` on the one time-enabled layer, stall zones by validity (api/ogc_time.py).

OGC API Features Part 1 /req/core/fc-time-response: a feature is selected when its temporal
extent intersects the instant or interval asked for. Expected sets are computed here from
pub.stall_zones itself, so each test fails if the server compared anything else.
"""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

BEIJING = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def client(demo_client: TestClient) -> TestClient:
    return demo_client


@pytest.fixture(scope="module")
def zones(demo_engine: Engine) -> dict[int, tuple[dt.datetime, dt.datetime | None]]:
    with demo_engine.connect() as conn:
        rows = conn.execute(text("SELECT id, valid_from, valid_to FROM pub.stall_zones")).all()
    return {r.id: (r.valid_from, r.valid_to) for r in rows}


def ids(client: TestClient, **params: str) -> set[int]:
    r = client.get("/ogc/collections/stall_zones/items", params={"limit": 1000, **params})
    assert r.status_code == 200, (params, r.text)
    return {f["id"] for f in r.json()["features"]}


def intersecting(zones, start: dt.datetime | None, end: dt.datetime | None) -> set[int]:
    return {i for i, (vf, vt) in zones.items()
            if (end is None or vf <= end) and (start is None or vt is None or vt > start)}


def test_demo_zones_have_varied_validity(zones) -> None:
    now = dt.datetime.now(dt.UTC)
    assert len(zones) > 20
    assert all(vf <= now and (vt is None or vt > now) for vf, vt in zones.values())
    assert any(vt is not None for _, vt in zones.values())  # fixed-term zones
    assert any(vt is None for _, vt in zones.values())  # until further notice
    assert all(vf.astimezone(BEIJING).time() == dt.time(0) for vf, _ in zones.values())


def test_req_core_fc_time_response_instant(client: TestClient, zones) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert ids(client, datetime=now.isoformat().replace("+00:00", "Z")) == set(zones)
    starts = sorted(vf for vf, _ in zones.values())
    middle = starts[len(starts) // 2]
    before_middle = middle - dt.timedelta(seconds=1)
    expected = intersecting(zones, before_middle, before_middle)
    assert 0 < len(expected) < len(zones)
    assert ids(client, datetime=before_middle.isoformat()) == expected
    # A zone is valid from the first moment of its first day.
    assert ids(client, datetime=middle.isoformat()) == intersecting(zones, middle, middle)
    # A bare date is that day's start in Beijing time.
    day = middle.astimezone(BEIJING).date()
    assert ids(client, datetime=day.isoformat()) == intersecting(zones, middle, middle)


def test_req_core_fc_time_response_intervals_and_open_ends(client: TestClient, zones) -> None:
    ends = sorted(vt for _, vt in zones.values() if vt is not None)
    starts = sorted(vf for vf, _ in zones.values())
    early = starts[0] - dt.timedelta(days=30)
    late = ends[-1] + dt.timedelta(days=1)
    cases = [(starts[1], starts[-2]), (early, starts[0] - dt.timedelta(days=1)),
             (ends[0], late), (None, starts[3]), (ends[0], None)]
    for start, end in cases:
        raw = f"{start.isoformat() if start else '..'}/{end.isoformat() if end else '..'}"
        assert ids(client, datetime=raw) == intersecting(zones, start, end), raw
    # After every fixed term has ended only the open-ended zones remain.
    assert ids(client, datetime=f"{late.isoformat()}/..") == {
        i for i, (_, vt) in zones.items() if vt is None}
    assert ids(client, datetime=f"../{early.isoformat()}") == set()


def test_datetime_combines_with_a_filter_and_counts(client: TestClient, zones) -> None:
    now = dt.datetime.now(dt.UTC).isoformat()
    r = client.get("/ogc/collections/stall_zones/items",
                   params={"datetime": now, "filter": "zone_type = 'night_market'",
                           "limit": 1000})
    body = r.json()
    assert r.status_code == 200 and body["numberMatched"] == len(body["features"]) > 0
    assert {f["properties"]["zone_type"] for f in body["features"]} == {"night_market"}


def test_temporal_extent_is_the_layers_validity(client: TestClient, zones) -> None:
    extent = client.get("/ogc/collections/stall_zones").json()["extent"]
    (interval,) = extent["temporal"]["interval"]
    earliest = min(vf for vf, _ in zones.values())
    assert dt.datetime.fromisoformat(interval[0]) == earliest
    assert interval[1] is None  # some zones are valid until further notice
    assert extent["spatial"]["bbox"]
    listed = {c["id"]: c for c in client.get("/ogc/collections").json()["collections"]}
    assert listed["stall_zones"]["extent"]["temporal"]["interval"] == [interval]


@pytest.mark.parametrize("value", ["../..", "2026-13-01", "2026-01-01T00:00:00Z/2025-01-01"])
def test_req_core_query_param_invalid_datetime_is_400(client: TestClient, value: str) -> None:
    r = client.get("/ogc/collections/stall_zones/items", params={"datetime": value})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidParameterValue"
