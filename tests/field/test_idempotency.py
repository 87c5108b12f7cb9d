"""Idempotency-Key on case actions: a resent report is answered again and applied once."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.main import create_app
from tests.field.conftest import OWNER_WEST, WEST_POINT
from tests.support.accounts import headers_for


@pytest.fixture(scope="module")
def client(field_settings):
    with TestClient(create_app(field_settings)) as test_client:
        yield test_client


def dispatched_case(client, engine) -> dict:
    desk = headers_for(engine, "dispatcher")
    case = client.post("/cases", headers=desk, json={
        "category_type": "event", "category_code": "0102", "channel": "patrol",
        "x": WEST_POINT[0], "y": WEST_POINT[1], "description": "幂等测试"}).json()
    for action in ("file", "dispatch"):
        assert client.post(f"/cases/{case['id']}/actions/{action}", headers=desk,
                           json={}).status_code == 200
    return case


def count(engine, case_id: int, action: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM case_transitions WHERE case_id = :c "
                                 "AND action = :a"), {"c": case_id, "a": action}).scalar_one()


def test_a_replayed_action_returns_the_same_answer_and_writes_once(client, field_engine):
    case = dispatched_case(client, field_engine)
    worker = {**headers_for(field_engine, "grid_owner", owner_name=OWNER_WEST),
              "Idempotency-Key": str(uuid.uuid4())}
    body = {"note": "已清理完毕"}
    first = client.post(f"/cases/{case['id']}/actions/handle", headers=worker, json=body)
    assert first.status_code == 200, first.text
    assert "Idempotency-Replayed" not in first.headers
    for _ in range(3):
        again = client.post(f"/cases/{case['id']}/actions/handle", headers=worker, json=body)
        assert again.status_code == 200, again.text
        assert again.headers["Idempotency-Replayed"] == "true"
        assert again.json() == first.json()
    assert count(field_engine, case["id"], "handle") == 1
    # Without the key the same resend is a second action, refused by the workflow.
    plain = {k: v for k, v in worker.items() if k != "Idempotency-Key"}
    assert client.post(f"/cases/{case['id']}/actions/handle", headers=plain,
                       json=body).status_code == 409


def test_the_same_key_for_another_request_is_refused(client, field_engine):
    case = dispatched_case(client, field_engine)
    worker = {**headers_for(field_engine, "grid_owner", owner_name=OWNER_WEST),
              "Idempotency-Key": str(uuid.uuid4())}
    assert client.post(f"/cases/{case['id']}/actions/handle", headers=worker,
                       json={"note": "一"}).status_code == 200
    other = client.post(f"/cases/{case['id']}/actions/handle", headers=worker,
                        json={"note": "二"})
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]


def test_a_refused_action_does_not_use_up_the_key(client, field_engine):
    case = dispatched_case(client, field_engine)
    desk = headers_for(field_engine, "dispatcher")
    key = {"Idempotency-Key": str(uuid.uuid4())}
    refused = client.post(f"/cases/{case['id']}/actions/close", headers={**desk, **key},
                          json={})
    assert refused.status_code == 409
    with field_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM idempotency_keys WHERE key = :k"),
                            {"k": key["Idempotency-Key"]}).scalar_one() == 0


def test_keys_are_per_user_and_must_be_visible_ascii(client, field_engine):
    case = dispatched_case(client, field_engine)
    key = str(uuid.uuid4())
    one = headers_for(field_engine, "dispatcher")
    two = headers_for(field_engine, "dispatcher")
    first = client.post(f"/cases/{case['id']}/actions/extend",
                        headers={**one, "Idempotency-Key": key},
                        json={"note": "雨天", "extend_to": "2030-01-01T09:00:00+08:00"})
    assert first.status_code == 200, first.text
    # Another user's identical key is their own: this request runs (and is refused: no note).
    answer = client.post(f"/cases/{case['id']}/actions/extend",
                         headers={**two, "Idempotency-Key": key}, json={})
    assert "Idempotency-Replayed" not in answer.headers
    assert answer.status_code == 422
    bad = client.post(f"/cases/{case['id']}/actions/handle",
                      headers={**one, "Idempotency-Key": "has space"}, json={})
    assert bad.status_code in (400, 422)


def age_key(engine, key: str, days: float) -> None:
    """Make a stored key `days` old (as if the phone had sent it then)."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE idempotency_keys SET created_at = now() - "
                          "make_interval(secs => :s) WHERE key = :k"),
                     {"s": days * 86400, "k": key})


def test_an_expired_key_no_longer_replays_and_a_fresh_one_does(client, field_engine):
    keep = client.app.state.settings.api.idempotency_keep_days
    worker = headers_for(field_engine, "grid_owner", owner_name=OWNER_WEST)
    old, fresh = dispatched_case(client, field_engine), dispatched_case(client, field_engine)
    keys = {old["id"]: str(uuid.uuid4()), fresh["id"]: str(uuid.uuid4())}
    for case_id, key in keys.items():
        assert client.post(f"/cases/{case_id}/actions/handle", json={"note": "处置"},
                           headers={**worker, "Idempotency-Key": key}).status_code == 200
    age_key(field_engine, keys[old["id"]], keep + 0.01)
    age_key(field_engine, keys[fresh["id"]], keep - 0.01)
    # Expired: the resend runs as a new request, which the workflow refuses (already handled).
    again = client.post(f"/cases/{old['id']}/actions/handle", json={"note": "处置"},
                        headers={**worker, "Idempotency-Key": keys[old["id"]]})
    assert again.status_code == 409, again.text
    assert "Idempotency-Replayed" not in again.headers
    replay = client.post(f"/cases/{fresh['id']}/actions/handle", json={"note": "处置"},
                         headers={**worker, "Idempotency-Key": keys[fresh["id"]]})
    assert replay.status_code == 200 and replay.headers["Idempotency-Replayed"] == "true"
    assert count(field_engine, old["id"], "handle") == count(field_engine, fresh["id"],
                                                             "handle") == 1


def test_storing_an_answer_purges_expired_keys_of_anyone(client, field_engine):
    keep = client.app.state.settings.api.idempotency_keep_days
    with field_engine.begin() as conn:
        stale = conn.execute(text(
            "INSERT INTO idempotency_keys (username, key, method, path, body_sha256, "
            "status_code, response, created_at) SELECT 'somebody-else', 'stale-' || g, 'POST', "
            "'/cases/1/actions/handle', repeat('0', 64), 200, '{}', "
            "now() - make_interval(secs => :s) FROM generate_series(1, 3) g RETURNING key"),
            {"s": (keep + 1) * 86400}).scalars().all()
    case = dispatched_case(client, field_engine)
    worker = {**headers_for(field_engine, "grid_owner", owner_name=OWNER_WEST),
              "Idempotency-Key": str(uuid.uuid4())}
    assert client.post(f"/cases/{case['id']}/actions/handle", headers=worker,
                       json={"note": "处置"}).status_code == 200
    with field_engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM idempotency_keys WHERE key = ANY(:k)"),
                            {"k": stale}).scalar_one()
        kept = conn.execute(text("SELECT count(*) FROM idempotency_keys WHERE key = :k"),
                            {"k": worker["Idempotency-Key"]}).scalar_one()
    assert (left, kept) == (0, 1)
