"""Shared by the browser tests: Debian's Chromium on a page that may only talk to the app.

Every request that leaves 127.0.0.1 is aborted and recorded, which proves a page works on an
isolated government network. JavaScript errors and console errors are recorded too.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
LOOPBACK = "127.0.0.1"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def chromium_or_skip() -> Path:
    """Chromium's path; a skip on a developer machine without it, a failure under manage.sh."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found (Debian package chromium)"
        # manage.sh installs chromium and sets this: browser tests never skip silently there.
        if os.environ.get("CI") or os.environ.get("CITYGRID_REQUIRE_BROWSER"):
            pytest.fail(f"{message}; browser tests must run in CI")
        pytest.skip(message)
    return CHROMIUM


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))  # bound before the server starts: no race for the port
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class OfflinePage:
    """A Chromium page plus what it tried to fetch outside the app and the errors it logged."""

    page: Any
    external: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        """Save a screenshot under artifacts/ and return its path."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path))
        return path


@contextmanager
def offline_page(chromium: Path, *, width: int = 1400, height: int = 900,
                 intercept: bool = True, **context_options: Any) -> Iterator[OfflinePage]:
    """A zh-CN Chromium page whose non-loopback requests are aborted and recorded.

    `intercept=False` (bench/pages.py): outside hosts fail in Chromium's own resolver instead of
    in a Playwright route, which holds every request until this Python process lets it go (tens
    of ms each on a busy machine, queued one after the other: a cost no user has); they are
    still recorded.
    """
    from playwright.sync_api import sync_playwright

    args = CHROMIUM_ARGS if intercept else [
        *CHROMIUM_ARGS, f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOOPBACK}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=args)
        try:
            context = browser.new_context(viewport={"width": width, "height": height},
                                          locale="zh-CN", **context_options)
            page = context.new_page()
            result = OfflinePage(page)

            def route(r: Any) -> None:
                if urlsplit(r.request.url).hostname == LOOPBACK:
                    r.continue_()
                else:
                    result.external.append(r.request.url)
                    r.abort()

            if intercept:
                page.route("**/*", route)
            else:
                page.on("request", lambda r: urlsplit(r.url).hostname != LOOPBACK
                        and result.external.append(r.url))
            page.on("console",
                    lambda msg: msg.type == "error" and result.errors.append(msg.text))
            page.on("pageerror", lambda exc: result.errors.append(str(exc)))
            yield result
        finally:
            browser.close()
