"""Benchmark helper: where one page's time goes, from Chromium's own performance data.

Not a timed test. Serves the app over the private cluster's demo city (like bench/pages.py),
opens one page as one role in a fresh Chromium context (empty cache) at 1440x900 and 390x844
and prints, from the page's Resource Timing entries and CDP `Performance.getMetrics`:

* the document: server time (request sent -> first byte) and download
* per request (scripts, styles, tiles, data): start, time queued in the browser before it was
  sent (Chromium opens at most 6 HTTP/1.1 connections per host; the rest wait), server time
  (sent -> first byte: the handler and, for tiles, ST_AsMVT or the cache), download, bytes
* totals per kind (script / css / tile / other) and the main thread's busy time by category
  (script, layout, style recalculation) up to the moment the page said it was interactive
  (`window.cgReady.interactive`)

Each page is opened twice per size: `cold` on a server started `--settle` seconds before (its
tile caches empty but for what api/tile_warmup.py rendered since startup; bench/pages.py
reaches /map about 5 s after startup) and `warm` (the server's tile caches hold the first
view's tiles).

    .venv/bin/python bench/page_profile.py [--path /map] [--role dispatcher] [--settle 5]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from api.main import create_app
from gis.platform.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, run as a script
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/pages.py
from pages import tokens

from tests.support.browser import chromium_or_skip, offline_page, serve

_ENTRIES_JS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const res = performance.getEntriesByType("resource").map(e => ({
    name: e.name, type: e.initiatorType, start: e.startTime, fetchStart: e.fetchStart,
    requestStart: e.requestStart, responseStart: e.responseStart, end: e.responseEnd,
    bytes: e.transferSize}));
  return {nav: {requestStart: nav.requestStart, responseStart: nav.responseStart,
                responseEnd: nav.responseEnd, dcl: nav.domContentLoadedEventEnd,
                load: nav.loadEventEnd, bytes: nav.transferSize},
          ready: window.cgReady || null, res: res};
}"""


def kind(name: str) -> str:
    """Script, style, tile or other, by URL."""
    path = name.split("?")[0]
    if path.endswith(".js"):
        return "script"
    if path.endswith(".css"):
        return "css"
    if "/tiles/" in path or path.endswith(".pbf"):
        return "tile"
    return "other"


def profile(chromium: Path, base: str, path: str, token: str | None, width: int,
            height: int, label: str, *, intercept: bool = False) -> None:
    """Open `path` once and print its breakdown."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with offline_page(chromium, width=width, height=height, intercept=intercept,
                      extra_http_headers=headers) as browser:
        page = browser.page
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(base + path, wait_until="load", timeout=120_000)
        try:
            page.wait_for_function("() => window.cgReady && window.cgReady.view !== undefined",
                                   timeout=30_000)
        except Exception:  # a page without the flag: what it did by now
            pass
        page.wait_for_timeout(500)
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        data = page.evaluate(_ENTRIES_JS)
    nav, ready = data["nav"], data["ready"] or {}
    print(f"\n== {path} {width}x{height} {label}: document server "
          f"{nav['responseStart'] - nav['requestStart']:.0f} ms, download "
          f"{nav['responseEnd'] - nav['responseStart']:.0f} ms, {nav['bytes'] / 1024:.0f} KB; "
          f"DOMContentLoaded {nav['dcl']:.0f} ms, load {nav['load']:.0f} ms; "
          f"interactive {ready.get('interactive', float('nan')):.0f} ms, "
          f"view {ready.get('view', float('nan')):.0f} ms")
    print(f"   main thread (whole run): script {metrics.get('ScriptDuration', 0) * 1000:.0f} ms,"
          f" layout {metrics.get('LayoutDuration', 0) * 1000:.0f} ms, style "
          f"{metrics.get('RecalcStyleDuration', 0) * 1000:.0f} ms, all tasks "
          f"{metrics.get('TaskDuration', 0) * 1000:.0f} ms")
    print(f"   {'start':>6} {'queued':>6} {'server':>6} {'down':>5} {'end':>6} {'KB':>6}  url")
    totals: dict[str, list[float]] = {}
    for e in sorted(data["res"], key=lambda e: e["start"]):
        queued = max(0.0, e["requestStart"] - e["start"]) if e["requestStart"] else 0.0
        server = max(0.0, e["responseStart"] - e["requestStart"]) if e["requestStart"] else 0.0
        down = max(0.0, e["end"] - e["responseStart"]) if e["responseStart"] else 0.0
        k = kind(e["name"])
        t = totals.setdefault(k, [0, 0.0, 0.0, 0.0, 0.0, 0.0])
        t[0] += 1
        t[1] += queued
        t[2] += server
        t[3] = max(t[3], e["end"])
        t[4] += e["bytes"] / 1024
        t[5] = max(t[5], server)
        print(f"   {e['start']:6.0f} {queued:6.0f} {server:6.0f} {down:5.0f} {e['end']:6.0f} "
              f"{e['bytes'] / 1024:6.1f}  {e['name'].replace(base, '')[:90]}")
    for k, (n, q, s, last, kb, worst) in sorted(totals.items()):
        print(f"   {k:6} {n:3d} requests, queued {q:6.0f} ms in sum, server {s:6.0f} ms in sum "
              f"(max {worst:4.0f}), last byte {last:6.0f} ms, {kb:6.1f} KB")


def main(path: str = typer.Option("/map", help="page to profile"),
         role: str = typer.Option("dispatcher", help="role to sign in as"),
         settle: float = typer.Option(5.0, help="seconds between server start and `cold`"),
         intercept: bool = typer.Option(False, help="block outside hosts by Playwright routes "
                                        "(as the tests) instead of Chromium's resolver"),
         ) -> None:
    """Profile `path` for `role` at both sizes, tile caches cold then warm."""
    settings = Settings()
    chromium = chromium_or_skip()
    keys = tokens(settings)
    for width, height in ((1440, 900), (390, 844)):
        app = create_app(settings)  # a fresh app per size: its tile caches start empty
        with serve(app) as base:
            time.sleep(settle)
            for label in ("cold", "warm"):
                profile(chromium, base, path, keys.get(role), width, height,
                        label + (" (Playwright routes)" if intercept else ""),
                        intercept=intercept)


if __name__ == "__main__":
    typer.run(main)
