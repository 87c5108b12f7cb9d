"""Benchmark: every page, every role, desktop and phone, in Chromium with an empty cache.

Not a timed test. Serves the app (default settings: the private cluster with the demo city,
`citygrid demo load`) on a loopback port and opens each page the role is offered (the shell's
navigation, plus the anonymous pages) in Debian's Chromium at 1440x900 and 390x844, one fresh
browser context per page (empty cache), every request outside 127.0.0.1 aborted. Per page:

* `server`   the document's time to first byte (request sent -> response start), ms
* `inter`    time to interactive, s from navigation start: on a page that says so
             (`window.cgReady.interactive`, by `flag`: the map pages of maps/templates/
             overview.js and public.js) the moment its map, layers and handlers are built and
             the base map's tiles of the first view are drawn; on a page without a map the
             `load` event (by `load`); on a map page that does not say so the `idle` figure
             below (by `idle`), so such a page is never counted faster than it is
* `view`     `window.cgReady.view`: every tiled layer shown at first view has drawn its tiles
             of that view too (empty where the page does not say), s
* `idle`     the earlier definition: navigation start -> the `load` event and the last request
             of the page finished (tiles, labels and data included; measured after the network
             is quiet for 0.5 s), s
* `KB`       bytes transferred (encoded body + headers) of every response
* `req`      requests made; `err` console errors and uncaught exceptions; `out` requests to
             other hosts (aborted)

Budget (issue 15): inter <= 1.0 s, <= 600 KB, 0 errors, 0 outside requests. The start-up
warm-ups (api/warmup.py) are waited for before the first page: a server is measured as it
runs, not in its first seconds. The server's page cache is warmed by one plain GET per page
first (and one GET of each /static file the page links, which fills the server's gzip cache
of static files), so `server` is the cached figure; the cold render time of that GET is
printed as `cold`. The browser's cache is always empty.

    .venv/bin/python bench/pages.py [--markdown] [--only /map]
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from api.main import create_app
from api.shell import page_paths
from api.warmup import wait_for_warmups
from gis.access import auth
from gis.platform.db import database_url, make_engine, transaction
from gis.platform.settings import Settings
from maps.shell import nav_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, run as a script
from tests.support.browser import chromium_or_skip, offline_page, serve

VIEWPORTS = ((1440, 900), (390, 844))
ANONYMOUS_PAGES = ("/", "/login", "/public")
ROLES = ("dispatcher", "planner", "analyst", "grid_owner", "supervisor")
BUDGET_S, BUDGET_KB = 1.0, 600
QUIET_MS = 500
STATIC_URL = re.compile(r'(?:src|href)="(/static/[^"?#]+)')


@dataclass
class Row:
    """One page at one size for one role."""

    role: str
    path: str
    size: str
    status: int
    cold_s: float
    server_ms: float
    interactive_s: float
    by: str
    view_s: float | None
    idle_s: float
    kb: float
    requests: int
    errors: list[str]
    outside: int

    @property
    def ok(self) -> bool:
        """Within the budget."""
        return (self.status == 200 and self.interactive_s <= BUDGET_S and self.kb <= BUDGET_KB
                and not self.errors and self.outside == 0)


def tokens(settings: Settings) -> dict[str, str]:
    """A bearer token for one demo user of each role (`citygrid demo load` made them)."""
    engine = make_engine(database_url(settings))
    found: dict[str, str] = {}
    with transaction(engine) as session:
        for role in ROLES:
            username = session.execute(text(
                "SELECT username FROM users WHERE role = :role ORDER BY id LIMIT 1"),
                {"role": role}).scalar()
            if username is not None:
                found[role] = auth.issue_token(session, user=auth.get_user(session, username))
    engine.dispose()
    return found


_READY_JS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  return {flag: window.cgReady || null, load: nav ? nav.loadEventEnd : null,
          map: !!document.querySelector(".leaflet-container")};
}"""


def _read(page: Any, script: str) -> dict[str, Any]:
    """`script`'s object, or {} when the page does not answer within 10 s (evaluate would wait
    for ever behind a blocked main thread)."""
    try:
        return dict(page.wait_for_function(script, timeout=10_000).json_value())
    except Exception:
        return {}


@dataclass
class Timing:
    """What one page load measured."""

    status: int
    server_ms: float
    interactive_s: float
    by: str
    view_s: float | None
    idle_s: float
    kb: float
    requests: int
    errors: list[str]
    outside: int


def measure(chromium: Any, base: str, path: str, token: str | None, width: int,
            height: int) -> Timing:
    """Open `path` in a fresh context and measure it (see the module docstring)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # Outside hosts fail in Chromium's resolver (still counted in `out`), not in Playwright
    # routes, which hold every request until this Python process (the server's too) lets it go.
    with offline_page(chromium, width=width, height=height, intercept=False,
                      extra_http_headers=headers) as browser:
        page = browser.page
        requests: list[Any] = []
        finished: list[float] = []
        page.on("request", lambda r: requests.append(r))
        done: list[Any] = []  # sizes() of a request still open (the desk's live events) waits
        page.on("requestfinished", lambda r: (finished.append(time.perf_counter()),
                                              done.append(r)))
        page.on("requestfailed", lambda r: finished.append(time.perf_counter()))
        started = time.perf_counter()
        response = page.goto(base + path, wait_until="load", timeout=120_000)
        loaded = time.perf_counter()
        if _read(page, "() => ({flag: window.cgReady !== undefined})").get("flag"):
            try:  # view comes after interactive: both are set once it is
                page.wait_for_function("() => window.cgReady.view !== undefined",
                                       timeout=60_000)
            except Exception:  # never drawn: by idle below
                pass
        try:
            page.wait_for_load_state("networkidle", timeout=30_000)
        except Exception:  # a page that polls never idles: count what it did in 30 s
            pass
        idle = max([loaded, *finished]) - started
        marks = _read(page, _READY_JS)
        flag = marks.get("flag") or {}
        if flag.get("interactive") is not None:
            interactive, by = flag["interactive"] / 1000, "flag"
        elif not marks:  # the page's script never answered (a busy loop, a modal dialog)
            interactive, by = idle, "hung"
        elif marks["map"] or marks["load"] is None:
            interactive, by = idle, "idle"
        else:
            interactive, by = marks["load"] / 1000, "load"
        view = flag["view"] / 1000 if flag.get("view") is not None else None
        status = response.status if response else 0
        timing = response.request.timing if response else {}
        server_ms = max(0.0, timing.get("responseStart", 0) - timing.get("requestStart", 0))
        transferred = 0
        for request in done:  # open streams are counted in `req`, their bytes are not
            try:
                sizes = request.sizes()
            except Exception:  # aborted (outside) requests have no sizes
                continue
            transferred += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        return Timing(status, server_ms, interactive, by, view, idle, transferred / 1024,
                      len(requests), list(browser.errors), len(browser.external))


def main(markdown: bool = typer.Option(False, help="print a Markdown table for the README"),
         only: str | None = typer.Option(None, help="measure only this path"),
         roles: str = typer.Option(",".join(ROLES), help="comma-separated roles to sign in as"),
         ) -> None:
    """Measure every page of every role at desktop and phone size."""
    console = Console()
    settings = Settings()
    chromium = chromium_or_skip()
    app = create_app(settings)
    keys = tokens(settings)
    rows: list[Row] = []
    with serve(app) as base:
        # A server is measured as it runs, not in its first seconds: the start-up warm-ups
        # (tiles of the first views, the default analyses) compete for the 2 cores meanwhile.
        waited = time.perf_counter()
        warm = wait_for_warmups(app, timeout=300)
        console.print(f"start-up warm-ups {'ended' if warm else 'STILL RUNNING'} after "
                      f"{time.perf_counter() - waited:.1f} s", highlight=False)
        available = page_paths(app)
        plan: list[tuple[str, str]] = [("anonymous", p) for p in ANONYMOUS_PAGES]
        for role in roles.split(","):
            if role in keys:
                plan += [(role, p.path) for p in nav_for(role, available)]
        if only:
            plan = [(r, p) for r, p in plan if p == only]
        for role, path in plan:
            token = keys.get(role)
            started = time.perf_counter()
            first = httpx.get(base + path, timeout=300,
                              headers={"Authorization": f"Bearer {token}"} if token else {})
            cold = time.perf_counter() - started
            for asset in sorted(set(STATIC_URL.findall(first.text))):  # the server's gzip cache
                httpx.get(base + asset, headers={"Accept-Encoding": "gzip"}, timeout=60)
            for width, height in VIEWPORTS:
                t = measure(chromium, base, path, token, width, height)
                rows.append(Row(role, path, f"{width}x{height}", t.status, cold, t.server_ms,
                                t.interactive_s, t.by, t.view_s, t.idle_s, t.kb, t.requests,
                                t.errors, t.outside))
                if markdown:  # row by row: a long run can be read while it goes
                    print("| " + " | ".join(_cells(rows[-1])) + " |", flush=True)
                else:
                    console.log(rows[-1])
    print_table(console, rows, markdown=markdown)


def _cells(r: Row) -> list[str]:
    view = "" if r.view_s is None else f"{r.view_s:.2f}"
    return [r.role, r.path, r.size, str(r.status), f"{r.cold_s:.2f}", f"{r.server_ms:.0f}",
            f"{r.interactive_s:.2f}", r.by, view, f"{r.idle_s:.2f}", f"{r.kb:.0f}",
            str(r.requests), str(len(r.errors)), str(r.outside),
            "pass" if r.ok else "FAIL"]


def print_table(console: Console, rows: list[Row], *, markdown: bool) -> None:
    """The per-page table with the budget and pass/fail."""
    head = ["role", "page", "size", "HTTP", "cold s", "server ms", "inter s", "by", "view s",
            "idle s", "KB", "req", "err",
            "out", f"budget ≤{BUDGET_S:.1f} s ≤{BUDGET_KB} KB 0/0"]
    cells = [_cells(r) for r in rows]
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for c in cells:
            print("| " + " | ".join(c) + " |")
    else:
        table = Table(*head, title="pages: Chromium, empty cache, demo city")
        for c in cells:
            table.add_row(*c)
        console.print(table)
    passed = sum(r.ok for r in rows)
    print(f"\n{passed}/{len(rows)} within budget")
    for r in rows:
        for error in r.errors[:2]:
            print(f"  {r.role} {r.path} {r.size}: {error[:160]}")


if __name__ == "__main__":
    typer.run(main)
