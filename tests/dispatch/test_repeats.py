"""Repeat complaints: within 50 m or the same grid, within 30 days; 3 or more are supervised."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from gis.dispatch.cases import get_case, list_cases, transition
from gis.dispatch.repeats import list_supervised
from tests.dispatch.test_workflow import GRID_EAST, GRID_WEST, WEST_POINT, insert_grids, new_case

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 9, 1, 9, 0, tzinfo=CST)
# Metres to degrees near 37° N, close enough to place points; distances are checked in SQL.
M_LON = 1 / 88_900
M_LAT = 1 / 111_000


@pytest.fixture
def grids(session):
    insert_grids(session)
    return session


def offset(metres_east: float, metres_north: float = 0.0) -> tuple[float, float]:
    return WEST_POINT[0] + metres_east * M_LON, WEST_POINT[1] + metres_north * M_LAT


def metres_between(session, a: int, b: int) -> float:
    return session.execute(text("""
        SELECT ST_Distance(x.geom::geography, y.geom::geography)
        FROM cases x, cases y WHERE x.id = :a AND y.id = :b"""), {"a": a, "b": b}).scalar_one()


def test_three_nearby_complaints_are_supervised_others_are_not(grids):
    first = new_case(grids, at=T0)
    assert first.repeat_group_id is None and not first.supervised
    second = new_case(grids, at=T0 + dt.timedelta(days=1), point=offset(-10, 8))
    assert second.repeat_of == first.id
    assert second.repeat_group_id == first.id
    assert not second.supervised
    third = new_case(grids, at=T0 + dt.timedelta(days=2), point=offset(-15, -12))
    assert third.repeat_of == second.id  # the latest matching complaint
    assert third.supervised
    assert all(get_case(grids, c.id).supervised for c in (first, second, third))

    # 60 m east, across the shared edge: another grid and too far.
    far = new_case(grids, at=T0 + dt.timedelta(days=3), point=offset(60))
    assert far.grid_code == GRID_EAST and first.grid_code == GRID_WEST
    assert 55 < metres_between(grids, far.id, first.id) < 65
    assert far.repeat_group_id is None and not far.supervised

    # Same spot, 31 days after the last complaint of the group: outside the window.
    late = new_case(grids, at=third.reported_at + dt.timedelta(days=31))
    assert late.repeat_group_id is None and not late.supervised

    # Same spot and window but another category: not a repeat.
    other = new_case(grids, at=T0 + dt.timedelta(days=2, hours=1), category_code="0104")
    assert other.repeat_group_id is None

    groups = {g.group_id: g for g in list_supervised(grids)}
    assert first.id in groups
    group = groups[first.id]
    assert group.case_ids == (first.id, second.id, third.id)
    assert (group.case_count, group.open_count) == (3, 3)
    assert (group.category_type, group.category_code) == ("event", "0102")
    assert group.grid_codes == (GRID_WEST,)
    assert far.id not in {i for g in groups.values() for i in g.case_ids}
    assert {c.id for c in list_cases(grids, supervised=True, limit=10_000)} >= {
        first.id, second.id, third.id}


def test_same_grid_links_even_beyond_the_radius(grids):
    a = new_case(grids, at=T0, point=offset(-65, 30))  # west part of the west grid
    b = new_case(grids, at=T0 + dt.timedelta(hours=1), point=offset(15, -30))
    assert a.grid_code == b.grid_code == GRID_WEST
    assert metres_between(grids, a.id, b.id) > 50
    assert b.repeat_of == a.id


def test_radius_links_across_a_grid_edge(grids):
    a = new_case(grids, at=T0)  # ~18 m west of the shared edge
    b = new_case(grids, at=T0 + dt.timedelta(hours=1), point=offset(40))
    assert (a.grid_code, b.grid_code) == (GRID_WEST, GRID_EAST)
    assert b.repeat_of == a.id


def test_radius_and_window_are_configurable(grids):
    a = new_case(grids, at=T0)
    b = new_case(grids, at=T0 + dt.timedelta(days=10), repeat_window_days=7)
    assert b.repeat_group_id is None
    c = new_case(grids, at=T0 + dt.timedelta(days=11), point=offset(40),
                 repeat_radius_m=30)
    assert c.repeat_group_id is None  # other grid, 40 m > 30 m
    d = new_case(grids, at=T0 + dt.timedelta(days=11, hours=1), repeat_window_days=7,
                 repeat_radius_m=30, supervise_from=2)
    assert d.repeat_of == b.id and d.supervised
    assert a.id not in {g.group_id for g in list_supervised(grids)}


def test_groups_merge_when_a_complaint_bridges_them(grids):
    west = new_case(grids, at=T0, point=offset(-60))
    east = new_case(grids, at=T0 + dt.timedelta(hours=1), point=offset(60))
    assert east.repeat_group_id is None  # 120 m apart, different grids
    # Same grid as `west`, 45 m from `east`: it links to both, so the groups merge.
    bridge = new_case(grids, at=T0 + dt.timedelta(hours=2), point=offset(15))
    assert bridge.repeat_group_id == west.id
    assert get_case(grids, east.id).repeat_group_id == west.id
    assert bridge.supervised


def test_rejected_complaints_do_not_count(grids):
    a = new_case(grids, at=T0)
    transition(grids, a.id, "reject", actor="d", note="重复录入", at=T0 + dt.timedelta(minutes=1))
    b = new_case(grids, at=T0 + dt.timedelta(hours=1))
    assert b.repeat_group_id is None


def test_open_only_hides_finished_groups(grids):
    cases = [new_case(grids, at=T0 + dt.timedelta(hours=h)) for h in range(3)]
    for case in cases:
        for minutes, step in enumerate(["file", "dispatch", "handle", "report", "close"], 1):
            transition(grids, case.id, step, actor="d",
                       at=T0 + dt.timedelta(days=1, minutes=minutes))
    group_id = cases[0].id
    assert group_id in {g.group_id for g in list_supervised(grids)}
    assert group_id not in {g.group_id for g in list_supervised(grids, open_only=True)}
