"""The app shell's data from the api layer: which pages exist, who is signed in, where to land."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.routing import Match

from gis.access.auth import ROLE_LABELS_ZH, User
from gis.platform.settings import Settings
from maps.shell import NAV, Shell, ShellUser


def page_paths(app: FastAPI) -> frozenset[str]:
    """The shell's pages that the app really serves, so it never offers a missing one."""
    cached: frozenset[str] | None = getattr(app.state, "page_paths", None)
    if cached is None:
        # Asked the way the router itself decides (BaseRoute.matches), so routes included
        # through nested routers count whatever way FastAPI keeps them.
        def served(path: str) -> bool:
            scope = {"type": "http", "path": path, "method": "GET", "root_path": "",
                     "headers": [], "query_string": b""}
            return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)

        cached = frozenset(page.path for page in NAV if served(page.path))
        app.state.page_paths = cached
    return cached


def role_label(role: str) -> str:
    """The Chinese name of `role` (the role itself for a role without one)."""
    return ROLE_LABELS_ZH.get(role, role)


def shell_for(request: Request, user: User, settings: Settings) -> Shell:
    """The complete header of a page rendered for `user` alone."""
    return Shell(city=settings.city.name,
                 user=ShellUser(display_name=user.display_name or user.username, role=user.role,
                                role_zh=role_label(user.role)),
                 available=page_paths(request.app))
