"""Every JSON error carries a zh-CN `message_zh` beside the English `detail` (api/errors_zh.py).

Domain errors, validation errors, unknown routes, the input guard, the body limit, CSRF refusals
and sign-in failures, through the whole app; OGC and Open311 keep their standard error shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.errors_zh import message_zh
from api.main import create_app
from tests.support.accounts import headers_for


@pytest.fixture(scope="module")
def client(test_settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(test_settings), base_url="http://127.0.0.1:8000") as c:
        yield c


def zh(answer: Any) -> str:
    body = answer.json()
    assert isinstance(body, dict) and "detail" in body, body
    text: str = body["message_zh"]
    assert any("\u4e00" <= c <= "\u9fff" for c in text), text  # Chinese, not English
    return text


def test_errors_of_every_origin_have_a_chinese_message(client: TestClient, engine: Any) -> None:
    assert zh(client.get("/no-such-page")) == "未找到所请求的页面或数据"
    assert zh(client.get("/auth/me")) == "请先登录"
    assert zh(client.post("/auth/token", data={"username": "x"})) == \
        "输入有误，请检查填写的内容：密码"
    assert zh(client.post("/auth/token", data={"username": "nobody-zh",
                                              "password": "wrong-one"})) == "用户名或密码错误"
    analyst = headers_for(engine, "analyst")
    # A role that may not write: the domain error's table.
    refused = client.post("/zones", json={}, headers=analyst)
    assert refused.status_code == 403 and zh(refused) == "当前角色无权进行此操作"
    # The input guard (400) and the CSRF middleware (403) answer before any route.
    assert zh(client.get("/layers/roads/features", params={"q": "a\x00b"},
                         headers=analyst)) == "请求有误，请检查填写的内容"
    client.cookies.set("citygrid_token", "cg_whatever")
    forged = client.post("/auth/logout", headers={"Origin": "http://127.0.0.1:9999"})
    client.cookies.clear()
    assert forged.status_code == 403 and zh(forged) == "跨站请求被拒绝：请在本系统的页面内操作"


def test_standard_error_shapes_are_left_alone(client: TestClient) -> None:
    ogc = client.get("/ogc/collections/no-such-collection")
    assert ogc.status_code == 404 and "message_zh" not in ogc.json()
    open311 = client.get("/open311/v2/requests/no-such.json")
    assert open311.status_code >= 400 and isinstance(open311.json(), list)


def test_messages_for_statuses_and_fields() -> None:
    assert message_zh(409, "version 3 is older than 4").startswith("与当前状态冲突")
    assert message_zh(422, [{"loc": ["query", "lon"]}, {"loc": ["query", "lat"]}]) == \
        "输入有误，请检查填写的内容：经度、纬度"
    assert message_zh(429, "too many failed sign-ins; try again in 30 s") == \
        "登录失败次数过多，请 30 秒后再试"
    assert message_zh(502, "bad gateway") == "服务器内部错误，请稍后再试"
