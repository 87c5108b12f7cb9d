"""An open /events/cases stream ends when its sign-in ends: logout, a disabled account.

The stream is authorised once, when it opens, and may stay open for hours; before, a stolen
or signed-out token (or a disabled account) kept hearing every case change until the browser
closed. The stream re-checks its token every SIGN_IN_RECHECK_S (at a heartbeat) and ends
when it no longer holds.
"""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest
from sqlalchemy import text

from api import live_events
from tests.field.test_live_events import WEST, Stream, complaint
from tests.support.accounts import headers_for


@pytest.fixture(autouse=True)
def recheck_every_heartbeat(monkeypatch):
    # The served app runs in this process: check at each 1 s heartbeat, not every 15 s.
    monkeypatch.setattr(live_events, "SIGN_IN_RECHECK_S", 0.0)


def _ended(stream: Stream, timeout: float) -> bool:
    stream._thread.join(timeout)
    return not stream._thread.is_alive()


def test_a_signed_out_token_stops_hearing_cases(field_base_url, field_engine):
    listener = headers_for(field_engine, "dispatcher")
    stream = Stream(field_base_url, listener)
    try:
        with httpx.Client(base_url=field_base_url, headers=listener, timeout=30) as me:
            assert me.post("/auth/logout").status_code == 204
        assert _ended(stream, timeout=5), "the stream of a signed-out token stayed open"
        with httpx.Client(base_url=field_base_url, timeout=30,
                          headers=headers_for(field_engine, "dispatcher")) as desk:
            case = desk.post("/cases", json=complaint(WEST)).json()
        time.sleep(0.5)
        heard = [e for _, e in list(stream.events.queue)
                 if e["data"].get("case_id") == case["id"]]
        assert heard == []
    finally:
        stream.close()


def test_a_disabled_account_stops_hearing_cases(field_base_url, field_engine):
    listener = headers_for(field_engine, "analyst")
    token = listener["Authorization"].removeprefix("Bearer ")
    stream = Stream(field_base_url, listener)
    try:
        with field_engine.begin() as conn:
            disabled = conn.execute(text(
                "UPDATE users SET active = false WHERE id = (SELECT user_id FROM api_tokens "
                "WHERE token_sha256 = :t)"), {"t": hashlib.sha256(token.encode()).hexdigest()})
            assert disabled.rowcount == 1
        assert _ended(stream, timeout=5), "the stream of a disabled account stayed open"
    finally:
        stream.close()


def test_a_valid_stream_stays_open(field_base_url, field_engine):
    stream = Stream(field_base_url, headers_for(field_engine, "analyst"))
    try:
        assert not _ended(stream, timeout=3)  # heartbeats every second pass the re-check
    finally:
        stream.close()


def test_a_handed_over_grid_is_no_longer_heard_by_its_former_owner(field_base_url,
                                                                    field_engine):
    former, successor = WEST["owner_name"], "网格员丙"
    stream = Stream(field_base_url, headers_for(field_engine, "grid_owner",
                                                owner_name=former))
    try:
        with field_engine.begin() as conn:
            conn.execute(text(
                "UPDATE grid_owners SET valid_to = current_date WHERE grid_code = :g "
                "AND owner_name = :o AND valid_to IS NULL"), {"g": WEST["code"], "o": former})
            conn.execute(text(
                "INSERT INTO grid_owners (grid_code, owner_name, owner_kind, phone, valid_from) "
                "VALUES (:g, :o, 'grid_worker', '0531-00000000', current_date)"),
                {"g": WEST["code"], "o": successor})
        time.sleep(2.5)  # the next re-check (every heartbeat here) reads the handover
        with httpx.Client(base_url=field_base_url, timeout=30,
                          headers=headers_for(field_engine, "dispatcher")) as desk:
            case = desk.post("/cases", json=complaint(WEST)).json()
        with pytest.raises(AssertionError):
            stream.next_for(case["id"], "collect", timeout=1.5)
    finally:
        stream.close()
        with field_engine.begin() as conn:
            conn.execute(text("DELETE FROM grid_owners WHERE grid_code = :g AND owner_name = :o"),
                         {"g": WEST["code"], "o": successor})
            conn.execute(text(
                "UPDATE grid_owners SET valid_to = NULL WHERE grid_code = :g AND owner_name = :o"),
                {"g": WEST["code"], "o": former})
