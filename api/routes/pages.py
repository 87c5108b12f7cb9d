"""HTML pages (zh-CN) rendered by maps/.

The overview map reads every layer and takes seconds to render, so the finished page is kept in
`app.state.page_cache`. The cache is per process: with several workers each renders once, and
a write must call `invalidate_pages(request.app)` in the worker that made it (other workers
keep the old page until they restart).
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape

from api.auth import StaffDep, optional_user
from api.deps import SessionDep, SettingsDep
from api.overview_map import render_overview
from api.shell import page_paths, role_label
from gis.access.auth import User
from gis.platform.errors import AuthenticationError
from maps.field import FIELD_ICON_SVG
from maps.shell import nav_for

router = APIRouter(tags=["pages"])

_CACHE_LOCK = threading.Lock()  # one render at a time: a cold burst should not render N times


@dataclass(frozen=True)
class CachedPage:
    """A rendered page, plain and gzip-compressed."""

    body: bytes
    gzipped: bytes
    etag: str


def invalidate_pages(app: FastAPI) -> None:
    """Drop every cached page of `app`; call after a write that changes what maps show."""
    with _CACHE_LOCK:
        _cache(app).clear()


def _cache(app: FastAPI) -> dict[str, CachedPage]:
    if not hasattr(app.state, "page_cache"):
        app.state.page_cache = {}
    cache: dict[str, CachedPage] = app.state.page_cache
    return cache


def _page(html: str) -> CachedPage:
    body = html.encode("utf-8")
    # The map page is mostly GeoJSON: gzip shrinks it about six times.
    return CachedPage(body, gzip.compress(body, compresslevel=6),
                      '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _respond(request: Request, page: CachedPage) -> Response:
    headers = {"ETag": page.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == page.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return HTMLResponse(page.gzipped, headers={**headers, "Content-Encoding": "gzip"})
    return HTMLResponse(page.body, headers=headers)


# Every browser asks for /favicon.ico on a page that names no icon (the sign-in page, the
# resident report pages) and logs the 404 as a console error: answer with the app's icon.
@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    """The app's icon (SVG) where a browser looks for one by default."""
    return Response(FIELD_ICON_SVG, media_type="image/svg+xml",
                    headers={"Cache-Control": "max-age=86400"})


@router.get("/", response_class=HTMLResponse, summary="首页 (index page)")
def index(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """The Chinese index page: public links, or once signed in the pages of the user's role."""
    try:
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        user: User | None = optional_user(request, session, bearer)
    except AuthenticationError:
        user = None  # an expired cookie: the page is still the public one
    city = escape(settings.city.name)
    if user is None:
        links = Markup(
            '<li><a href="/public">便民服务地图</a>：农贸市场、夜市、公厕、充电桩、停车场</li>'
            '<li><a href="/login">工作人员登录</a>：调度台、摊群点规划、分析与报表</li>')
        who = Markup("")
    else:
        links = Markup("").join(
            Markup('<li><a href="{}">{}</a></li>').format(p.path, p.label)
            for p in nav_for(user.role, page_paths(request.app)))
        links += Markup('<li><a href="/public">便民服务地图</a>（公众版）</li>')
        who = Markup('<p class="who">{}（{}）<button type="button" id="logout">退出登录</button>'
                     '</p>').format(user.display_name or user.username, role_label(user.role))
    return HTMLResponse(f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{city} 数字化城管平台</title>
<style>
body{{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;
  max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}}
li{{margin:.5rem 0}} li a{{display:inline-block;min-height:44px;line-height:44px}}
.who button{{min-height:44px;margin-left:1rem;padding:0 1rem}}
</style>
</head>
<body>
<h1>{city} 数字化城管平台</h1>
{who}
<ul>
{links}
<li><a href="/docs">API 文档</a></li>
<li><a href="/health">系统状态</a></li>
</ul>
<script>
var out = document.getElementById("logout");
if (out) {{
  out.addEventListener("click", function () {{
    fetch("/auth/logout", {{method: "POST", credentials: "same-origin"}})
      .finally(function () {{ window.location.assign("/"); }});
  }});
}}
</script>
</body>
</html>
""")


@router.get("/map", response_class=HTMLResponse, summary="综合地图 (overview map page)")
def overview_page(request: Request, session: SessionDep, settings: SettingsDep,
                  user: StaffDep) -> Response:
    """Every layer of the city on one offline map page (big ones as tiles); cached."""
    # A grid owner's page holds only their grids' rows (row-level security): cache it apart,
    # or one owner's page would be served to everybody else.
    key = f"map:owner:{user.owner_name}" if user.is_grid_owner else "map"

    def render() -> str:
        # Small layers embedded, the base map and big layers from /tiles (api.overview_map).
        return render_overview(session, settings)

    return cached_page(request, key, render)


def cached_page(request: Request, key: str, render: Callable[[], str]) -> Response:
    """The page cached under `key`, rendered once per process (until invalidated)."""
    cache = _cache(request.app)
    page = cache.get(key)
    if page is None:
        with _CACHE_LOCK:
            page = cache.get(key)
            if page is None:
                page = cache[key] = _page(render())
    return _respond(request, page)
