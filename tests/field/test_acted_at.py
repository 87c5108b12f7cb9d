"""Offline field actions keep the time the phone made them (acted_at), clamped to what can be."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.main import create_app
from gis.dispatch.cases import create_case, transition
from gis.platform.db import transaction
from tests.field.conftest import LIGHT_WEST, OWNER_WEST, WEST_POINT
from tests.support.accounts import headers_for

BEIJING = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def client(field_settings):
    with TestClient(create_app(field_settings)) as test_client:
        yield test_client


def dispatched(engine, hours_ago: float = 3) -> tuple[int, dt.datetime]:
    """A case reported and dispatched `hours_ago`; (id, dispatch time)."""
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    with transaction(engine) as session:
        case = create_case(session, category_type="event", category_code="0102",
                           channel="patrol", x=WEST_POINT[0], y=WEST_POINT[1],
                           reported_at=at, actor="测试", repeat_window_days=1)
        for action in ("file", "dispatch"):
            transition(session, case.id, action, actor="测试", at=at)
    return case.id, at


def step(engine, case_id: int, action: str) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT t.at, t.recorded_at, f.acted_at, f.recorded_at AS f_recorded, f.flag, "
            "f.received_at FROM case_transitions t LEFT JOIN field_action_times f "
            "ON f.transition_id = t.id WHERE t.case_id = :c AND t.action = :a"),
            {"c": case_id, "a": action}).mappings().one())


def act(client, engine, case_id: int, action: str, acted_at: dt.datetime, **extra):
    worker = {**headers_for(engine, "grid_owner", owner_name=OWNER_WEST),
              "Idempotency-Key": str(uuid.uuid4())}
    return client.post(f"/cases/{case_id}/actions/{action}", headers=worker,
                       json={"note": "离线处置", "acted_at": acted_at.isoformat(), **extra})


def test_an_offline_handling_keeps_the_phones_time_and_received_is_server_time(
        client, field_engine):
    case_id, dispatched_at = dispatched(field_engine)
    handled = (dispatched_at + dt.timedelta(hours=1)).astimezone(BEIJING).replace(microsecond=0)
    answer = act(client, field_engine, case_id, "handle", handled)
    assert answer.status_code == 200, answer.text
    row = step(field_engine, case_id, "handle")
    assert row["at"] == row["acted_at"] == row["f_recorded"] == handled
    assert row["flag"] is None
    now = dt.datetime.now(dt.UTC)
    assert abs((row["recorded_at"] - now).total_seconds()) < 60
    assert abs((row["received_at"] - now).total_seconds()) < 60
    # The timeline the desk reads says the phone's time too.
    timeline = answer.json()["transitions"]
    assert dt.datetime.fromisoformat(timeline[-1]["at"]) == handled
    reported = handled + dt.timedelta(minutes=20)
    assert act(client, field_engine, case_id, "report", reported).status_code == 200
    assert step(field_engine, case_id, "report")["at"] == reported


@pytest.mark.parametrize(("shift", "flag"), [
    (dt.timedelta(hours=2), "future"),  # the phone's clock is ahead
    (dt.timedelta(hours=-5), "before_dispatch"),  # before the case reached the worker
])
def test_an_impossible_time_is_recorded_as_server_time_and_flagged(
        client, field_engine, shift, flag):
    case_id, _ = dispatched(field_engine)
    claimed = dt.datetime.now(dt.UTC).replace(microsecond=0) + shift
    before = dt.datetime.now(dt.UTC)
    assert act(client, field_engine, case_id, "handle", claimed).status_code == 200
    row = step(field_engine, case_id, "handle")
    assert row["acted_at"] == claimed and row["flag"] == flag
    assert before <= row["at"] <= dt.datetime.now(dt.UTC)


def test_a_small_clock_skew_ahead_is_kept(client, field_engine):
    case_id, _ = dispatched(field_engine)
    ahead = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=60)
    assert act(client, field_engine, case_id, "handle", ahead).status_code == 200
    row = step(field_engine, case_id, "handle")
    assert (row["at"], row["flag"]) == (ahead, None)


def test_at_and_acted_at_together_are_refused(client, field_engine):
    case_id, dispatched_at = dispatched(field_engine)
    when = dispatched_at + dt.timedelta(minutes=5)
    answer = act(client, field_engine, case_id, "handle", when, at=when.isoformat())
    assert answer.status_code == 422
    assert step(field_engine, case_id, "dispatch")["at"] == dispatched_at


def test_a_verification_keeps_its_time_but_not_one_before_the_report(client, field_engine):
    supervisor = headers_for(field_engine, "supervisor")
    times = {}
    for name, minutes in (("kept", 30), ("too_early", -10)):
        case_id, dispatched_at = dispatched(field_engine)
        reported_at = dispatched_at + dt.timedelta(hours=1)
        with transaction(field_engine) as session:
            for action in ("handle", "report"):
                transition(session, case_id, action, actor="网格员", at=reported_at)
        claimed = reported_at + dt.timedelta(minutes=minutes)
        answer = client.post(f"/field/cases/{case_id}/verify", headers={
            **supervisor, "Idempotency-Key": str(uuid.uuid4())}, json={
            "result": "passed", "note": "现场核查", "acted_at": claimed.isoformat()})
        assert answer.status_code == 201, answer.text
        with field_engine.connect() as conn:
            times[name] = conn.execute(text(
                "SELECT v.verified_at, f.acted_at, f.flag FROM case_verifications v "
                "JOIN field_action_times f ON f.verification_id = v.id WHERE v.id = :v"),
                {"v": answer.json()["id"]}).one()
        assert dt.datetime.fromisoformat(answer.json()["verified_at"]) == times[name][0]
    kept, early = times["kept"], times["too_early"]
    assert kept.verified_at == kept.acted_at and kept.flag is None
    assert early.flag == "before_last_step" and early.verified_at > early.acted_at


def test_a_component_state_keeps_the_phones_time_unless_impossible(client, field_engine):
    owner = headers_for(field_engine, "grid_owner", owner_name=OWNER_WEST)
    url = f"/assets/streetlights/{LIGHT_WEST}"
    with field_engine.begin() as conn:
        conn.execute(text("UPDATE streetlights SET updated_at = now() - interval '1 day' "
                          "WHERE code = :c"), {"c": LIGHT_WEST})
    out = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).replace(microsecond=0)
    answer = client.patch(url, headers=owner, json={"lit": False, "acted_at": out.isoformat()})
    assert answer.status_code == 200, answer.text
    assert dt.datetime.fromisoformat(answer.json()["updated_at"]) == out
    assert answer.json()["acted_at_flag"] is None
    # Older than the change just recorded, then ahead of the clock: server time, flagged.
    for shift, flag in ((dt.timedelta(hours=-3), "before_last_step"),
                        (dt.timedelta(hours=5), "future")):
        before = dt.datetime.now(dt.UTC)
        answer = client.patch(url, headers=owner, json={
            "lit": True, "state": "intact", "acted_at": (out + shift).isoformat()})
        assert answer.status_code == 200, answer.text
        assert answer.json()["acted_at_flag"] == flag
        assert before <= dt.datetime.fromisoformat(answer.json()["updated_at"]) \
            <= dt.datetime.now(dt.UTC)
