"""Case state machine: the seven steps with audit, refused transitions, rework and extension.

Fixtures are constructed here (two adjacent unit grids far from the demo city) and reused by
the other case test modules.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gis.dispatch.cases import create_case, get_case, transition
from gis.dispatch.workflow import TRANSITIONS, allowed_actions, next_status
from gis.platform.errors import ConflictError, InvalidInputError, NotFoundError, OutsideCityError

CST = dt.timezone(dt.timedelta(hours=8))
# Two ~89 m x 89 m grids side by side at 118.000-118.002 E, 37.0000-37.0008 N: outside the
# demo city, so no demo case can ever sit within 50 m of these.
GRID_WEST = "37990100100101"
GRID_EAST = "37990100100102"
WEST_POINT = (118.0008, 37.0004)  # ~18 m west of the shared edge


def square(x0: float, y0: float, x1: float, y1: float) -> str:
    return f"POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


def insert_grids(session: Session) -> None:
    """District, subdistrict, community and two unit grids, all constructed for tests."""
    outline = square(117.999, 36.999, 118.003, 37.002)
    session.execute(text("""
        INSERT INTO districts (code, name, source, simulated, geom)
        VALUES ('379901', '测试区', 'test fixture', true, ST_Multi(ST_GeomFromText(:g, 4326)));
        INSERT INTO subdistricts (code, name, district_code, geom)
        VALUES ('379901001', '测试街道', '379901', ST_Multi(ST_GeomFromText(:g, 4326)));
        INSERT INTO communities (code, name, subdistrict_code, geom)
        VALUES ('379901001001', '测试社区', '379901001', ST_Multi(ST_GeomFromText(:g, 4326)));
        """), {"g": outline})
    for code, x0 in ((GRID_WEST, 118.000), (GRID_EAST, 118.001)):
        session.execute(text("""
            INSERT INTO grid_cells (code, community_code, geom)
            VALUES (:code, '379901001001', ST_GeomFromText(:g, 4326))"""),
            {"code": code, "g": square(x0, 37.0000, x0 + 0.001, 37.0008)})


def new_case(session: Session, *, at: dt.datetime, point: tuple[float, float] = WEST_POINT,
             category_type: str = "event", category_code: str = "0102", **extra):
    """A complaint at `point` reported at `at` by a hotline operator."""
    return create_case(session, category_type=category_type, category_code=category_code,
                       channel="hotline_12345", x=point[0], y=point[1], reported_at=at,
                       actor="接线员 张三", description="测试投诉", **extra)


def audit_count(session: Session, case_id: int) -> int:
    return session.execute(text("SELECT count(*) FROM case_transitions WHERE case_id = :id"),
                           {"id": case_id}).scalar_one()


@pytest.fixture
def grids(session: Session) -> Session:
    insert_grids(session)
    return session


T0 = dt.datetime(2026, 9, 1, 9, 0, tzinfo=CST)  # a Tuesday, an ordinary working day


def test_transition_table_is_explicit():
    assert next_status("collected", "file") == "filed"
    assert next_status("reported", "rework") == "dispatched"
    assert next_status("dispatched", "extend") == "dispatched"
    assert allowed_actions("closed") == ["evaluate", "reply"]
    assert allowed_actions("evaluated") == ["reply"]
    assert {"reject", "rework", "extend"} <= set(TRANSITIONS)


def test_seven_steps_happy_path_writes_audit(grids):
    case = new_case(grids, at=T0)
    assert case.status == "collected"
    assert case.grid_code == GRID_WEST
    assert (case.raw_x, case.raw_y, case.raw_crs) == (*WEST_POINT, "wgs84")
    steps = [("file", "filed"), ("dispatch", "dispatched"), ("handle", "handled"),
             ("report", "reported"), ("close", "closed"), ("evaluate", "evaluated")]
    for minutes, (action, expected) in enumerate(steps, start=1):
        extra = {"satisfaction": "basically"} if action == "evaluate" else {}
        case = transition(grids, case.id, action, actor=f"user-{action}",
                          at=T0 + dt.timedelta(minutes=10 * minutes), **extra)
        assert case.status == expected
    assert [t.action for t in case.transitions] == [
        "collect", "file", "dispatch", "handle", "report", "close", "evaluate"]
    assert [t.to_status for t in case.transitions] == [
        "collected", "filed", "dispatched", "handled", "reported", "closed", "evaluated"]
    assert case.transitions[0].actor == "接线员 张三"
    assert case.transitions[3].actor == "user-handle"
    assert case.transitions[3].at == T0 + dt.timedelta(minutes=30)
    assert case.dispatched_at == T0 + dt.timedelta(minutes=20)
    assert case.closed_at == T0 + dt.timedelta(minutes=50)
    assert case.satisfaction == "basically"
    assert case.surveyed_at == T0 + dt.timedelta(minutes=60)
    assert case.is_open is False
    assert audit_count(grids, case.id) == 7


@pytest.mark.parametrize(("prepare", "action", "status"), [
    ([], "close", "collected"),
    (["file"], "close", "filed"),  # close before dispatch
    (["file"], "handle", "filed"),
    (["file", "dispatch"], "report", "dispatched"),
    (["file", "dispatch"], "evaluate", "dispatched"),
    (["reject"], "dispatch", "rejected"),
    (["file", "dispatch", "handle", "report", "close"], "rework", "closed"),
])
def test_invalid_transition_is_refused_and_changes_nothing(grids, prepare, action, status):
    case = new_case(grids, at=T0)
    for minutes, step in enumerate(prepare, start=1):
        transition(grids, case.id, step, actor="dispatcher", note="理由",
                   at=T0 + dt.timedelta(minutes=minutes))
    before = get_case(grids, case.id)
    with pytest.raises(ConflictError) as refused:
        transition(grids, case.id, action, actor="dispatcher", note="理由",
                   satisfaction="satisfied" if action == "evaluate" else None,
                   at=T0 + dt.timedelta(hours=1))
    assert f"cannot {action}" in str(refused.value)
    assert repr(status) in str(refused.value)
    assert get_case(grids, case.id) == before


def test_evaluate_twice_is_refused(grids):
    case = new_case(grids, at=T0)
    for minutes, step in enumerate(["file", "dispatch", "handle", "report", "close"], start=1):
        transition(grids, case.id, step, actor="d", at=T0 + dt.timedelta(minutes=minutes))
    transition(grids, case.id, "evaluate", actor="回访员", satisfaction="satisfied",
               at=T0 + dt.timedelta(hours=1))
    with pytest.raises(ConflictError, match="cannot evaluate a case that is 'evaluated'"):
        transition(grids, case.id, "evaluate", actor="回访员", satisfaction="unsatisfied",
                   at=T0 + dt.timedelta(hours=2))
    case = get_case(grids, case.id)
    assert case.satisfaction == "satisfied"
    assert audit_count(grids, case.id) == 7


def test_bad_requests_name_the_value(grids):
    case = new_case(grids, at=T0)
    with pytest.raises(InvalidInputError, match="'teleport'"):
        transition(grids, case.id, "teleport", actor="d", at=T0)
    with pytest.raises(InvalidInputError, match=r"reject of case .* needs a reason"):
        transition(grids, case.id, "reject", actor="d", at=T0)
    with pytest.raises(InvalidInputError, match="actor"):
        transition(grids, case.id, "file", actor="  ", at=T0)
    with pytest.raises(InvalidInputError, match="before the last step"):
        transition(grids, case.id, "file", actor="d", at=T0 - dt.timedelta(minutes=1))
    with pytest.raises(NotFoundError, match="case 999999999"):
        transition(grids, 999_999_999, "file", actor="d", at=T0)
    with pytest.raises(InvalidInputError, match="'0999'"):
        new_case(grids, at=T0, category_code="0999")
    with pytest.raises(OutsideCityError, match=r"\(100.0, 30.0\)"):
        new_case(grids, at=T0, point=(100.0, 30.0))
    assert audit_count(grids, case.id) == 1


def test_evaluate_needs_a_known_rating(grids):
    case = new_case(grids, at=T0)
    for minutes, step in enumerate(["file", "dispatch", "handle", "report", "close"], start=1):
        transition(grids, case.id, step, actor="d", at=T0 + dt.timedelta(minutes=minutes))
    with pytest.raises(InvalidInputError, match="satisfaction 'great'"):
        transition(grids, case.id, "evaluate", actor="d", satisfaction="great",
                   at=T0 + dt.timedelta(hours=1))
    assert get_case(grids, case.id).status == "closed"


def test_rework_goes_back_to_dispatched_and_is_counted(grids):
    case = new_case(grids, at=T0)
    for minutes, step in enumerate(["file", "dispatch", "handle", "report"], start=1):
        transition(grids, case.id, step, actor="d", at=T0 + dt.timedelta(minutes=minutes))
    due_before = get_case(grids, case.id).due_at
    case = transition(grids, case.id, "rework", actor="核查员", note="垃圾未清运干净",
                      at=T0 + dt.timedelta(hours=1))
    assert case.status == "dispatched"
    assert case.reworked_count == 1
    assert case.due_at == due_before  # rework buys no time
    assert case.transitions[-1].note == "垃圾未清运干净"
    for minutes, step in enumerate(["handle", "report", "close"], start=61):
        case = transition(grids, case.id, step, actor="d", at=T0 + dt.timedelta(minutes=minutes))
    assert case.status == "closed"
    assert case.reworked_count == 1
    assert [t.action for t in case.transitions].count("rework") == 1


def test_extension_pushes_due_and_is_recorded(grids):
    case = new_case(grids, at=T0)
    transition(grids, case.id, "file", actor="d", at=T0 + dt.timedelta(minutes=1))
    case = transition(grids, case.id, "dispatch", actor="d", at=T0 + dt.timedelta(minutes=2))
    old_due = case.due_at
    new_due = old_due + dt.timedelta(days=2)
    with pytest.raises(InvalidInputError, match="needs a reason"):
        transition(grids, case.id, "extend", actor="d", extend_to=new_due,
                   at=T0 + dt.timedelta(hours=1))
    with pytest.raises(InvalidInputError, match="must be after the current due"):
        transition(grids, case.id, "extend", actor="d", note="x", extend_to=old_due,
                   at=T0 + dt.timedelta(hours=1))
    case = transition(grids, case.id, "extend", actor="处置单位", note="需协调供电公司断电",
                      extend_to=new_due, at=T0 + dt.timedelta(hours=1))
    assert case.status == "dispatched"
    assert case.due_at == new_due
    assert case.extended_count == 1
    row = grids.execute(text("""
        SELECT e.previous_due_at, e.new_due_at, e.reason, t.action, t.actor
        FROM case_extensions e JOIN case_transitions t ON t.id = e.transition_id
        WHERE e.case_id = :id"""), {"id": case.id}).one()
    assert tuple(row) == (old_due, new_due, "需协调供电公司断电", "extend", "处置单位")
    with pytest.raises(ConflictError, match="comes too late"):
        transition(grids, case.id, "extend", actor="d", note="again",
                   extend_to=new_due + dt.timedelta(days=1), at=new_due + dt.timedelta(hours=1))


def test_reply_is_recorded_once(grids):
    case = new_case(grids, at=T0)
    case = transition(grids, case.id, "reject", actor="d", note="不属于城管职责",
                      at=T0 + dt.timedelta(minutes=5))
    case = transition(grids, case.id, "reply", actor="d", at=T0 + dt.timedelta(minutes=6))
    assert case.status == "rejected"
    assert case.replied_at == T0 + dt.timedelta(minutes=6)
    with pytest.raises(ConflictError, match="already replied"):
        transition(grids, case.id, "reply", actor="d", at=T0 + dt.timedelta(minutes=7))


@pytest.mark.parametrize("statement", [
    "UPDATE case_transitions SET actor = 'someone else' WHERE case_id = :id",
    "DELETE FROM case_transitions WHERE case_id = :id",
])
def test_audit_rows_cannot_be_changed(grids, statement):
    case = new_case(grids, at=T0)
    with pytest.raises(DBAPIError, match="append-only"), grids.begin_nested():
        grids.execute(text(statement), {"id": case.id})
    assert get_case(grids, case.id).transitions[0].actor == "接线员 张三"
