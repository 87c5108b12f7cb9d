"""A zh-CN `message_zh` beside the English `detail` of every JSON error the app answers.

Domain errors get theirs in api/errors.py (a CityGridError may carry its own `message_zh`);
this middleware fills in the rest — the input guard, body limit, CSRF refusals, unknown routes,
validation errors, sign-in throttling — from the status and, for the messages people meet
most, the English text. Bodies without `detail` (OGC exceptions, Open311 error lists) keep
their standard shapes untouched.
"""

from __future__ import annotations

import gzip
import json
import re
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ZH_BY_STATUS: dict[int, str] = {
    400: "请求有误，请检查填写的内容",
    401: "未登录或登录已过期，请重新登录",
    403: "当前账号无权进行此操作",
    404: "未找到所请求的页面或数据",
    405: "不支持此请求方式",
    409: "与当前状态冲突（可能已被他人修改），请刷新后重试",
    413: "提交的内容过大",
    415: "不支持的文件或内容类型",
    422: "输入有误，请检查填写的内容",
    429: "操作过于频繁，请稍后再试",
    500: "服务器内部错误，请稍后再试",
    503: "数据库暂时不可用，请稍后重试",
}

# English messages people meet on the pages, matched from the start of `detail`.
_ZH_BY_MESSAGE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"wrong username or password"), "用户名或密码错误"),
    (re.compile(r"too many failed sign-ins; try again in (\d+) s"),
     "登录失败次数过多，请 {0} 秒后再试"),
    (re.compile(r".* refused: .*(?:must come from the app's own pages|comes from)"),
     "跨站请求被拒绝：请在本系统的页面内操作"),
    (re.compile(r".*outside the city"), "坐标不在本市范围内"),
    (re.compile(r".*needs a signed-in user"), "请先登录"),
    (re.compile(r".*needs role"), "当前角色无权进行此操作"),
]

# Field names of the API in Chinese, for validation errors.
FIELD_ZH: dict[str, str] = {
    "lon": "经度", "lat": "纬度", "crs": "坐标系", "q": "查询词", "limit": "数量上限",
    "name": "名称", "capacity": "摊位数", "operator": "管理方", "time_slots": "时段",
    "start": "开始时间", "end": "结束时间", "days": "经营日", "category": "类别",
    "description": "描述", "address": "地址", "at": "时刻", "bbox": "范围", "day": "日期",
    "username": "用户名", "password": "密码", "file": "文件", "geometry": "图形",
}


def known_message_zh(detail: str) -> str | None:
    """The Chinese for one of the English messages people meet most, else None."""
    for pattern, zh in _ZH_BY_MESSAGE:
        found = pattern.match(detail)
        if found:
            return zh.format(*found.groups())
    return None


def message_zh(status: int, detail: Any) -> str:
    """The Chinese message for an error answer with `status` and English `detail`."""
    if isinstance(detail, list):
        fields = []
        for item in detail:
            loc = item.get("loc", []) if isinstance(item, dict) else []
            names = [FIELD_ZH.get(str(part), "") for part in loc if isinstance(part, str)]
            label = next((n for n in reversed(names) if n), "")
            if label and label not in fields:
                fields.append(label)
        base = ZH_BY_STATUS.get(status, ZH_BY_STATUS[422])
        return base + ("：" + "、".join(fields) if fields else "")
    if isinstance(detail, str):
        known = known_message_zh(detail)
        if known:
            return known
    return ZH_BY_STATUS.get(status, ZH_BY_STATUS[500] if status >= 500 else ZH_BY_STATUS[400])


class ChineseErrorsMiddleware:
    """Adds `message_zh` to JSON error bodies that carry `detail` and lack it (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; hold back only error answers in JSON to add the message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=list(message["headers"]))
                if (message["status"] >= 400
                        and headers.get("content-type", "").startswith("application/json")):
                    held = message
                    return
                await send(message)
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await _send_localized(send, held, b"".join(chunks))

        await self.app(scope, receive, wrapped)


async def _send_localized(send: Send, start: Message, body: bytes) -> None:
    headers = MutableHeaders(raw=list(start["headers"]))
    encoded = headers.get("content-encoding", "").lower()
    try:
        raw = gzip.decompress(body) if encoded == "gzip" else body
        data = json.loads(raw) if encoded in ("", "gzip") else None
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and "detail" in data and "message_zh" not in data:
        data["message_zh"] = message_zh(start["status"], data["detail"])
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if encoded:
            del headers["content-encoding"]
        headers["content-length"] = str(len(body))
    await send({**start, "headers": headers.raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})
