"""The app shell of every staff page: header with the city, the user and role, logout, navigation.

One table (NAV) says which pages each role may use and ROLE_HOME where each role lands after
signing in; the api layer filters both by the routes the app really has (the field page may not
exist yet). `inject_shell` adds the header to any finished HTML page; `maps.assets.render_html`
calls it for every folium page. When the api layer passes the user, the header is complete on
arrival; a page cached for all users is sent without one and its script fills in the user, role
and navigation from GET /auth/me (whose answer is built from this same table).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup, escape

from gis.platform.errors import CityGridError

_TEMPLATES = Path(__file__).parent / "templates"
SHELL_HEIGHT_PX = 48


@dataclass(frozen=True)
class NavPage:
    """A staff page in the navigation: path, Chinese label, the roles it is meant for."""

    path: str
    label: str
    roles: frozenset[str]


def _roles(*names: str) -> frozenset[str]:
    return frozenset(("admin", *names))


# The pages each role may use, in menu order. Access itself is enforced by the routes; this
# table decides what a person is offered. "supervisor" is the field supervisor role.
NAV: tuple[NavPage, ...] = (
    NavPage("/map", "综合地图", _roles("dispatcher", "planner", "analyst", "grid_owner",
                                       "supervisor")),
    NavPage("/dispatch", "调度台", _roles("dispatcher", "grid_owner", "supervisor")),
    NavPage("/field", "外勤", _roles("grid_owner", "supervisor")),
    NavPage("/planner", "摊群点规划", _roles("planner")),
    NavPage("/analysis/map/hotspots", "投诉热点", _roles("analyst", "dispatcher")),
    NavPage("/analysis/map/dark-streets", "亮灯死角", _roles("analyst")),
    NavPage("/analysis/map/coverage-gaps", "工作站覆盖", _roles("analyst", "planner")),
    NavPage("/analysis/map/cover-risk", "井盖隐患", _roles("analyst")),
    NavPage("/reports/daily", "日报", _roles("analyst", "dispatcher", "supervisor")),
    NavPage("/reports/weekly", "周报", _roles("analyst", "dispatcher", "supervisor")),
    NavPage("/reports/monthly", "月报", _roles("analyst")),
)

# Where sign-in lands, first existing path wins (/field is added by the field-app work).
ROLE_HOME: dict[str, tuple[str, ...]] = {
    "admin": ("/map",),
    "dispatcher": ("/dispatch",),
    "planner": ("/planner",),
    "analyst": ("/analysis/map/hotspots",),
    "grid_owner": ("/field", "/dispatch"),
    "supervisor": ("/field", "/dispatch"),
}


@dataclass(frozen=True)
class ShellUser:
    """The signed-in person as the header shows them."""

    display_name: str
    role: str
    role_zh: str


@dataclass(frozen=True)
class Shell:
    """What the header shows; unknown parts (None) are filled in the browser from /auth/me."""

    city: str | None = None
    user: ShellUser | None = None
    available: frozenset[str] | None = field(default=None)


def nav_for(role: str, available: Collection[str] | None = None) -> list[NavPage]:
    """The pages `role` is offered, limited to the paths in `available` when given."""
    return [p for p in NAV if role in p.roles and (available is None or p.path in available)]


def home_for(role: str, available: Collection[str] | None = None) -> str:
    """The page `role` lands on after signing in ('/' when none of its pages exists)."""
    for path in ROLE_HOME.get(role, ()):
        if available is None or path in available:
            return path
    pages = nav_for(role, available)
    return pages[0].path if pages else "/"


def shell_header(shell: Shell) -> Markup:
    """The header element; every value escaped."""
    city = escape(shell.city or "")
    if shell.user is None:
        links = Markup("")
        who = Markup('<span class="cg-shell-name"></span><span class="cg-shell-role"></span>')
        state = "pending"
    else:
        links = Markup("").join(
            Markup('<a href="{}">{}</a>').format(p.path, p.label)
            for p in nav_for(shell.user.role, shell.available))
        who = Markup('<span class="cg-shell-name">{}</span>'
                     '<span class="cg-shell-role">{}</span>').format(
            shell.user.display_name, shell.user.role_zh)
        state = "ready"
    return Markup(
        '<header class="cg-shell" id="cg-shell" data-state="{state}">'
        '<a class="cg-shell-city" href="/"><span class="cg-shell-cityname">{city}</span>'
        '<small>数字化城管</small></a>'
        '<button class="cg-shell-menu" type="button" aria-expanded="false" '
        'aria-controls="cg-shell-panel" aria-label="打开菜单">☰<span>菜单</span></button>'
        '<div class="cg-shell-panel" id="cg-shell-panel">'
        '<nav class="cg-shell-nav" aria-label="页面导航">{links}</nav>'
        '<div class="cg-shell-user">{who}'
        '<button class="cg-shell-logout" type="button">退出登录</button></div>'
        '</div></header>').format(state=Markup(state), city=city, links=links, who=who)


def inject_shell(html: str, shell: Shell, *, full_height: bool = True) -> str:
    """`html` with the shell's style, header and script; `full_height` for map pages."""
    css = (_TEMPLATES / "shell.css").read_text(encoding="utf-8")
    js = (_TEMPLATES / "shell.js").read_text(encoding="utf-8")
    body_class = "cg-shell-map" if full_height else "cg-shell-doc"
    head = f"<style>{css}</style>\n</head>"
    if html.count("</head>") != 1:
        raise CityGridError("page has no single </head> to add the app shell to")
    html = html.replace("</head>", head, 1)
    start = html.find("<body")
    end = html.find(">", start)
    if start < 0 or end < 0:
        raise CityGridError("page has no <body> to add the app shell to")
    tag = html[start:end]
    if "class=" in tag:
        raise CityGridError("page body already has a class; the shell cannot mark it")
    config = json.dumps({"me": "/auth/me", "logout": "/auth/logout", "login": "/login"})
    script = f'<script>window.cgShellConfig = {config};\n{js}</script>'
    return (html[:start] + tag + f' class="{body_class}">' + str(shell_header(shell))
            + script + html[end + 1:])
