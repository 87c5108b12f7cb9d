"""Live case events: a committed case change reaches an open /events/cases stream within 1 s.

Two sessions on a real loopback server over two test grids: one client holds the server-sent
event stream open, another files and acts on cases; the events arrive after each commit,
and a grid owner's stream carries only the cases of their own grids.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from api.live_events import events_iterator
from tests.dispatch.test_workflow import GRID_EAST, GRID_WEST
from tests.field.conftest import EAST_POINT, OWNER_EAST, OWNER_WEST, WEST_POINT
from tests.support.accounts import headers_for


@pytest.fixture
def base_url(field_base_url) -> str:
    return field_base_url


class Stream:
    """An /events/cases stream read in a thread: (arrival time, event) pairs in a queue."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.listening = threading.Event()
        self._client = httpx.Client(base_url=base, headers=headers, timeout=30)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.listening.wait(10), "the stream never said it was listening"

    def _read(self) -> None:
        with self._client.stream("GET", "/events/cases", params={"heartbeat": 1}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")

            def lines() -> Iterator[str]:
                for line in response.iter_lines():
                    if line.startswith(": listening"):
                        self.listening.set()
                    yield line

            try:
                for event in events_iterator(lines()):
                    self.events.put((time.monotonic(), event))
            except httpx.HTTPError:
                return

    def next_for(self, case_id: int, action: str, timeout: float) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                at, event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event["data"].get("case_id") == case_id and event["data"]["action"] == action:
                return at, event
        raise AssertionError(f"no {action!r} event of case {case_id} within {timeout} s")

    def close(self) -> None:
        self._client.close()


def grid(point: tuple[float, float], code: str, owner: str) -> dict[str, Any]:
    return {"x": point[0], "y": point[1], "code": code, "owner_name": owner}


WEST = grid(WEST_POINT, GRID_WEST, OWNER_WEST)
EAST = grid(EAST_POINT, GRID_EAST, OWNER_EAST)


def complaint(point: dict[str, Any]) -> dict[str, Any]:
    return {"category_type": "event", "category_code": "0102", "channel": "patrol",
            "x": point["x"], "y": point["y"], "description": "实时推送测试"}


def test_committed_case_actions_arrive_within_a_second(base_url, field_engine):
    dispatcher = headers_for(field_engine, "dispatcher")
    stream = Stream(base_url, headers_for(field_engine, "analyst"))
    try:
        with httpx.Client(base_url=base_url, headers=dispatcher, timeout=30) as desk:
            point = WEST
            created = desk.post("/cases", json=complaint(point))
            assert created.status_code == 201, created.text
            done = time.monotonic()
            case = created.json()
            arrived, event = stream.next_for(case["id"], "collect", timeout=5)
            assert arrived - done < 1.0
            assert event["event"] == "case"
            assert event["data"]["case_no"] == case["case_no"]
            assert event["data"]["grid_code"].strip() == point["code"].strip()
            assert event["data"]["status"] == "collected"
            assert set(event["data"]) >= {"case_id", "case_no", "status", "action",
                                          "grid_code", "at"}

            for action, status in (("file", "filed"), ("dispatch", "dispatched")):
                response = desk.post(f"/cases/{case['id']}/actions/{action}", json={})
                assert response.status_code == 200, response.text
                done = time.monotonic()
                arrived, event = stream.next_for(case["id"], action, timeout=5)
                assert arrived - done < 1.0
                assert event["data"]["status"] == status
    finally:
        stream.close()


def test_a_refused_action_sends_nothing(base_url, field_engine):
    dispatcher = headers_for(field_engine, "dispatcher")
    stream = Stream(base_url, dispatcher)
    try:
        with httpx.Client(base_url=base_url, headers=dispatcher, timeout=30) as desk:
            case = desk.post("/cases", json=complaint(WEST)).json()
            stream.next_for(case["id"], "collect", timeout=5)
            assert desk.post(f"/cases/{case['id']}/actions/close", json={}).status_code == 409
            with pytest.raises(AssertionError):
                stream.next_for(case["id"], "close", timeout=1.5)
    finally:
        stream.close()


def test_a_grid_owner_hears_only_their_own_grids(base_url, field_engine):
    mine, other = WEST, EAST
    dispatcher = headers_for(field_engine, "dispatcher")
    stream = Stream(base_url, headers_for(field_engine, "grid_owner",
                                          owner_name=mine["owner_name"]))
    try:
        with httpx.Client(base_url=base_url, headers=dispatcher, timeout=30) as desk:
            foreign = desk.post("/cases", json=complaint(other)).json()
            own = desk.post("/cases", json=complaint(mine)).json()
            stream.next_for(own["id"], "collect", timeout=5)
            with pytest.raises(AssertionError):
                stream.next_for(foreign["id"], "collect", timeout=1.0)
    finally:
        stream.close()


def test_events_need_a_signed_in_user(base_url):
    with httpx.Client(base_url=base_url, timeout=10) as anonymous:
        assert anonymous.get("/events/cases").status_code == 401


def test_a_district_sub_centre_hears_only_its_district(base_url, field_engine):
    # A second district of the constructed city, with no grids of its own.
    with field_engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO districts (code, name, source, simulated, geom) "
            "SELECT '379902', '测试邻区', source, true, geom FROM districts "
            "WHERE code = '379901' ON CONFLICT (code) DO NOTHING"))
    dispatcher = headers_for(field_engine, "dispatcher")
    own = Stream(base_url, headers_for(field_engine, "dispatcher", district_code="379901"))
    neighbour = Stream(base_url, headers_for(field_engine, "dispatcher",
                                             district_code="379902"))
    try:
        with httpx.Client(base_url=base_url, headers=dispatcher, timeout=30) as desk:
            case = desk.post("/cases", json=complaint(WEST)).json()
            own.next_for(case["id"], "collect", timeout=5)
            with pytest.raises(AssertionError):
                neighbour.next_for(case["id"], "collect", timeout=1.0)
    finally:
        own.close()
        neighbour.close()
