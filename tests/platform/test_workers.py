"""`citygrid serve --workers N`: several app processes give the same, current answers.

The caches each process keeps (analysis results, routing and geocoding indexes) are keyed by
version counters in PostgreSQL, so an edit committed through one connection is seen by every
worker on its next request, whichever worker answers: at once as new figures, or as the
previous ones marked `X-Refreshing` while the new ones are computed behind them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL

from gis.access import auth
from gis.platform.db import make_engine, transaction
from gis.platform.settings import Settings
from tests.analysis.test_analysis_api import BBOX_Q, build_city
from tests.analysis.test_dark_streets import insert_light
from tests.support.databases import seeded_database

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2


@pytest.fixture(scope="module")
def city_url(settings: Settings) -> Iterator[URL]:
    yield from seeded_database(settings, "workers", build_city)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.fixture(scope="module")
def served(city_url: URL) -> Iterator[tuple[str, int]]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--workers", str(WORKERS),
         "--port", str(port)], cwd=ROOT, start_new_session=True,
        env={**os.environ, "CITYGRID_DATABASE_URL": city_url.render_as_string(
            hide_password=False)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # imports alone take ~10 s a process on 2 cores
        while time.monotonic() < deadline:
            assert process.poll() is None, f"serve exited with {process.returncode}"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200 and \
                        len(_children(process.pid)) >= WORKERS:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        yield base, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _dark(base: str, token: str) -> tuple[float, bool]:
    """(dark metres, whether the answer is a previous result while a new one is computed)."""
    # A new connection per call: the kernel hands it to whichever worker accepts first.
    r = httpx.get(f"{base}/analysis/dark-streets", params={"bbox": BBOX_Q, "step_m": 4},
                  headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                  timeout=60)
    assert r.status_code == 200, r.text
    return (round(sum(f["properties"]["dark_m"] for f in r.json()["features"]), 3),
            r.headers.get("X-Refreshing") == "true")


def _dark_m(base: str, token: str) -> float:
    return _dark(base, token)[0]


def test_workers_share_one_current_answer(served: tuple[str, int], city_url: URL) -> None:
    base, pid = served
    # `--workers 2` really runs app processes under one supervisor (plus multiprocessing's
    # resource tracker); `serve` without --workers runs in one process with no children.
    assert len(_children(pid)) >= WORKERS
    engine = make_engine(city_url)
    try:
        with transaction(engine) as session:
            user = auth.create_user(session, username=f"w-{uuid.uuid4().hex[:8]}",
                                    password=uuid.uuid4().hex, role="analyst")
            token = auth.issue_token(session, user=user)
        before = {_dark_m(base, token) for _ in range(8)}
        assert len(before) == 1
        dark = before.pop()
        assert dark > 0
        with transaction(engine) as session:  # a light in the 80 m hole, committed elsewhere
            insert_light(session, 97, 140, -500)
        # Right after the edit a worker may answer with its previous result, but says so
        # (X-Refreshing, computed behind it); no worker gives old figures as current, and
        # soon every worker gives the new ones.
        deadline = time.monotonic() + 120
        while True:
            answers = [_dark(base, token) for _ in range(8)]
            assert all(value == dark for value, stale in answers if stale)
            current = {value for value, stale in answers if not stale}
            assert dark not in current
            if len(current) == 1 and not any(stale for _, stale in answers):
                break
            assert time.monotonic() < deadline, answers
            time.sleep(0.2)
        assert current.pop() < dark
    finally:
        engine.dispose()
