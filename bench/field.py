"""Benchmark (not a test): field workers resend their reports while the desk streams events.

    .venv/bin/python bench/field.py                      # 50 workers, 1 photo of ~2.5 MB each
    .venv/bin/python bench/field.py --workers 200 --photos 3

Builds a throwaway database (citygrid_bench_field_<pid>_<hex>) with two test grids and their
owners, serves the app with uvicorn in this process on a free loopback port, opens one desk
stream (`GET /events/cases`, as the dispatcher desk does) and starts `--workers` threads, each
a grid worker with one dispatched case who, like a phone coming back online, sends every write
**twice** with the same `Idempotency-Key`: handle with a note, `--photos` photos of 2-4 MB
(random-noise JPEGs, which do not compress), report back.

Prints: writes acknowledged vs rows stored (transitions, photos: nothing lost or duplicated),
replays answered with `Idempotency-Replayed`, uploads/s, upload p50/p99, action p50/p99, and
the event delay from the write's answer to the desk stream (p50/p99/max; goal p99 < 1 s)
next to the named baseline: the action's own round trip (`action p50`). Clients and server
share the machine's CPUs, so the figures are a floor.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import typer
from PIL import Image
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.live_events import events_iterator  # noqa: E402
from api.main import create_app  # noqa: E402
from gis.access import auth  # noqa: E402
from gis.platform.db import make_engine, transaction  # noqa: E402
from gis.platform.settings import Settings  # noqa: E402
from tests.field.conftest import OWNER_WEST, WEST_POINT, seed  # noqa: E402
from tests.support.browser import serve  # noqa: E402
from tests.support.databases import seeded_database  # noqa: E402


def noise_jpeg(rng: random.Random, megabytes: float) -> bytes:
    """A JPEG of random pixels of about `megabytes` (noise does not compress)."""
    side = int((megabytes * 1_000_000 / 1.2) ** 0.5)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0-1) of `values`, nearest rank; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def token(engine: Any, role: str, owner: str | None = None) -> dict[str, str]:
    """A new user's bearer header."""
    with transaction(engine) as session:
        user = auth.create_user(session, username=f"b-{role}-{uuid.uuid4().hex[:8]}",
                                password="bench-password", role=role, owner_name=owner)
        return {"Authorization": f"Bearer {auth.issue_token(session, user=user)}"}


def run(settings: Settings, url: Any, *, workers: int, photos: int,
        images: list[bytes]) -> dict[str, Any]:
    """One run against the seeded database at `url`; returns the figures."""
    settings.db.url = url.render_as_string(hide_password=False)
    settings.media.dir = Path(f"/tmp/citygrid-bench-field-{os.getpid()}")
    engine = make_engine(url)
    desk = token(engine, "dispatcher")
    with serve(create_app(settings)) as base:
        cases = []
        with httpx.Client(base_url=base, headers=desk, timeout=60) as c:
            for _ in range(workers):
                case = c.post("/cases", json={
                    "category_type": "event", "category_code": "0102", "channel": "patrol",
                    "x": WEST_POINT[0], "y": WEST_POINT[1]}).json()
                for action in ("file", "dispatch"):
                    c.post(f"/cases/{case['id']}/actions/{action}", json={})
                cases.append(case["id"])
        arrivals: queue.Queue[tuple[float, dict]] = queue.Queue()
        listening = threading.Event()

        desk_client = httpx.Client(base_url=base, headers=desk, timeout=None)

        def stream() -> None:
            with contextlib.suppress(httpx.HTTPError), desk_client.stream(
                    "GET", "/events/cases", params={"heartbeat": 1}) as response:
                def lines():
                    for line in response.iter_lines():
                        if line.startswith(": listening"):
                            listening.set()
                        yield line
                for event in events_iterator(lines()):
                    arrivals.put((time.monotonic(), event["data"]))

        threading.Thread(target=stream, daemon=True).start()
        listening.wait(10)
        answered: dict[tuple[int, str], tuple[float, float]] = {}
        action_ms: list[float] = []
        upload_ms: list[float] = []
        acked = {"actions": 0, "photos": 0}
        replays = errors = 0
        lock = threading.Lock()

        def worker(case_id: int, headers: dict[str, str]) -> None:
            nonlocal replays, errors
            with httpx.Client(base_url=base, headers=headers, timeout=120) as c:
                def twice(send: Any, record: list[float]) -> httpx.Response | None:
                    nonlocal replays, errors
                    key = str(uuid.uuid4())
                    first = None
                    for attempt in range(2):
                        started = time.monotonic()
                        response = send({"Idempotency-Key": key})
                        with lock:
                            if attempt == 0:
                                record.append((time.monotonic() - started) * 1000)
                                response.extensions["times"] = (started, time.monotonic())
                                first = response
                            if response.status_code >= 300:
                                errors += 1
                            elif response.headers.get("Idempotency-Replayed") == "true":
                                replays += 1
                    return first

                for action in ("handle", "report"):
                    r = twice(lambda h, a=action: c.post(
                        f"/cases/{case_id}/actions/{a}", headers=h,
                        json={"note": "bench"}), action_ms)
                    if r is not None and r.status_code == 200:
                        with lock:
                            answered[(case_id, action)] = r.extensions["times"]
                            acked["actions"] += 1
                    if action == "handle":
                        for i, image in enumerate(images[:photos]):
                            r = twice(lambda h, img=image, n=i: c.post(
                                f"/cases/{case_id}/media", headers=h,
                                data={"stage": "handling"},
                                files={"file": (f"p{n}.jpg", img, "image/jpeg")}),
                                upload_ms)
                            if r is not None and r.status_code == 201:
                                with lock:
                                    acked["photos"] += 1

        owner = token(engine, "grid_owner", OWNER_WEST)
        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(cid, owner)) for cid in cases]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        time.sleep(2)  # let the last events arrive
        desk_client.close()
        delays, ahead = [], 0
        while not arrivals.empty():
            at, data = arrivals.get()
            sent = answered.get((data.get("case_id"), data.get("action")))
            if sent is not None:
                # The commit lies between the request's start and its answer: arrival minus
                # start bounds the commit-to-desk delay from above.
                delays.append((at - sent[0]) * 1000)
                ahead += at <= sent[1]
    with engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT count(*) FROM case_transitions WHERE action IN ('handle', 'report') "
            "AND case_id = ANY(:c)"), {"c": cases}).scalar_one()
        stored_photos = conn.execute(text(
            "SELECT count(*) FROM case_media WHERE case_id = ANY(:c)"),
            {"c": cases}).scalar_one()
    engine.dispose()
    figures = {
        "workers": workers, "photos_each": photos, "seconds": round(elapsed, 2),
        "actions_acknowledged": acked["actions"], "transitions_stored": stored,
        "photos_acknowledged": acked["photos"], "photos_stored": stored_photos,
        "replays_answered": replays, "errors": errors,
        "uploads_per_s": round(acked["photos"] / elapsed, 2) if elapsed else 0,
        "upload_p50_ms": round(pct(upload_ms, .5), 1),
        "upload_p99_ms": round(pct(upload_ms, .99), 1),
        "baseline_action_p50_ms": round(pct(action_ms, .5), 1),
        "action_p99_ms": round(pct(action_ms, .99), 1),
        "events_matched": len(delays),
        "events_before_the_writers_answer": ahead,
        # Upper bounds: from the start of the write (queueing and handling included).
        "event_delay_p50_ms": round(pct(delays, .5), 1),
        "event_delay_p99_ms": round(pct(delays, .99), 1),
        "event_delay_max_ms": round(max(delays, default=0), 1),
        "event_delay_mean_ms": round(statistics.fmean(delays), 1) if delays else 0,
    }
    return figures


def main(workers: int = typer.Option(50, help="simulated grid workers"),
         photos: int = typer.Option(1, help="photos per worker (2-4 MB each)"),
         keep_db: bool = typer.Option(False, help="keep the throwaway database")) -> None:
    """Run the benchmark and print its figures."""
    settings = Settings()
    if keep_db:
        os.environ["CITYGRID_KEEP_TEST_DB"] = "1"
    rng = random.Random(14)
    images = [noise_jpeg(rng, rng.uniform(2, 4)) for _ in range(min(photos, 3) or 0)]
    for url in seeded_database(settings, "bench_field", seed):
        figures = run(settings, url, workers=workers, photos=photos, images=images)
    print(json.dumps(figures, ensure_ascii=False))
    ok = (figures["transitions_stored"] == figures["actions_acknowledged"]
          and figures["photos_stored"] == figures["photos_acknowledged"]
          and figures["errors"] == 0
          and figures["events_matched"] == figures["actions_acknowledged"])
    print("nothing lost or duplicated" if ok else "MISMATCH: see the figures above")
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    typer.run(main)
