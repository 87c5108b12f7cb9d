"""Benchmark (not a test): case-photo uploads under concurrency, thumbnail time, nothing lost.

    python bench/media.py                          # 200 workers x 3 photos of 2-4 MB
    python bench/media.py --workers 50 --clients 8

Builds a throwaway database (citygrid_bench_media_<pid>) with the constructed test city, one
dispatched case per simulated grid worker, and serves the app with uvicorn (1 process) on
127.0.0.1 with a temporary media folder. Each worker uploads `--photos` distinct JPEG photos of
2-4 MB (camera-like noise, so they do not compress away) as `handling` photos with an
Idempotency-Key, `--clients` uploads in flight at once; then a tenth of the uploads are sent
again with their key (a phone retrying after a lost answer). Prints uploads/s, p50/p99 upload
latency, the in-process decode + thumbnail + public-copy time of one photo, and checks that
every acknowledged upload is stored exactly once (acknowledged ids = rows, replays = same ids).
The database is dropped at the end.

Baseline `media-2026-12-03` (this machine: 2 cores shared with other sessions' tests, 1 uvicorn
worker, PostgreSQL 15 on the same cores) is printed beside the figures for comparison.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import typer
from PIL import Image
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gis.access import auth
from gis.dispatch.cases import create_case, transition
from gis.media.images import decode, derived_copies
from gis.platform.db import database_url, drop_database, ensure_database, make_engine, transaction
from gis.platform.migrate import upgrade
from gis.platform.settings import MediaSettings, Settings
from tests.dispatch.test_routing import build_city

BASELINE = "media-2026-12-03"
POINT = (117.0315, 36.6605)
app = typer.Typer(add_completion=False)



def photo_costs_ms(photos: list[bytes]) -> list[float]:
    """In-process cost of each photo, ms: decode, thumbnail, EXIF-free public copy."""
    limits = MediaSettings()
    costs = []
    for photo in photos:
        start = time.perf_counter()
        decoded = decode(photo, max_pixels=limits.max_pixels, draft_px=limits.public_px)
        derived_copies(decoded.image, public_px=limits.public_px, thumb_px=limits.thumb_px)
        costs.append((time.perf_counter() - start) * 1000)
    return costs

def camera_photo(seed: int) -> bytes:
    """A 2-4 MB JPEG: smooth gradients plus sensor-like noise, like a phone photo."""
    rng = np.random.default_rng(seed)
    w, h = rng.choice([(2000, 1500), (2400, 1800), (2592, 1944)])
    base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3))
    noisy = np.clip(base * 0.5 + rng.normal(96, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(noisy, "RGB").save(out, format="JPEG", quality=int(rng.integers(80, 90)))
    return out.getvalue()


def unique(photo: bytes, tag: str) -> bytes:
    """The same picture with a JPEG comment naming the upload: another SHA-256, same work."""
    comment = tag.encode()
    return photo[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + photo[2:]


def seed(engine, workers: int) -> tuple[list[int], dict[str, str]]:  # type: ignore[no-untyped-def]
    """The test city, one dispatched case per worker, a dispatcher's token."""
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with transaction(engine) as session:
        build_city(session)
        ids = []
        for _ in range(workers):
            case = create_case(session, category_type="event", category_code="0505",
                               channel="patrol", x=POINT[0], y=POINT[1], reported_at=at,
                               actor="bench")
            for action in ("file", "dispatch"):
                transition(session, case.id, action, actor="bench", at=at)
            ids.append(case.id)
        user = auth.create_user(session, username="bench-media", role="dispatcher",
                                password=f"bench-{os.getpid()}-password")
        token = auth.issue_token(session, user=user)
    return ids, {"Authorization": f"Bearer {token}"}


@app.command()
def main(workers: int = typer.Option(200, help="simulated grid workers (one case each)"),
         photos: int = typer.Option(3, help="photos per worker"),
         clients: int = typer.Option(8, help="uploads in flight at once"),
         distinct: int = typer.Option(6, help="distinct base pictures generated")) -> None:
    """Run the upload benchmark and print its figures."""
    settings = Settings()
    url = database_url(settings, dbname=f"citygrid_bench_media_{os.getpid()}")
    ensure_database(url)
    engine = make_engine(url)
    media_dir = tempfile.mkdtemp(prefix="citygrid-bench-media-")
    server = None
    try:
        upgrade(engine)
        case_ids, headers = seed(engine, workers)
        bases = [camera_photo(k) for k in range(distinct)]
        sizes = [len(b) / 1e6 for b in bases]
        print(f"photos: {distinct} base pictures of {min(sizes):.1f}-{max(sizes):.1f} MB, "
              f"{workers} workers x {photos} = {workers * photos} uploads, {clients} in flight")

        limits = MediaSettings()
        costs = photo_costs_ms(bases)

        port = _free_port()
        env = {**os.environ, "CITYGRID_DATABASE_URL": url.render_as_string(hide_password=False),
               "CITYGRID_MEDIA_DIR": media_dir}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
            env=env, cwd=Path(__file__).resolve().parent.parent)
        base_url = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)

        jobs = [(case_id, k, f"w{case_id}-p{k}") for case_id in case_ids for k in range(photos)]
        lock = threading.Lock()
        acked: dict[str, int] = {}
        latencies: list[float] = []
        failures: list[str] = []
        local = threading.local()

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=base_url, headers=headers, timeout=120)
            return local.client  # type: ignore[no-any-return]

        def upload(job: tuple[int, int, str]) -> None:
            case_id, k, key = job
            data = unique(bases[(case_id + k) % distinct], key)
            start = time.perf_counter()
            answer = client().post(f"/cases/{case_id}/media", data={"stage": "handling"},
                                   files={"file": (f"{key}.jpg", data, "image/jpeg")},
                                   headers={"Idempotency-Key": key})
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                if answer.status_code == 201:
                    latencies.append(elapsed)
                    acked[key] = answer.json()["id"]
                else:
                    failures.append(f"{key}: {answer.status_code} {answer.text[:120]}")

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(upload, jobs))
        wall = time.perf_counter() - started

        replays = random.Random(7).sample(jobs, max(1, len(jobs) // 10))
        replay_ids: dict[str, int] = {}
        for case_id, k, key in replays:
            data = unique(bases[(case_id + k) % distinct], key)
            answer = client().post(f"/cases/{case_id}/media", data={"stage": "handling"},
                                   files={"file": (f"{key}.jpg", data, "image/jpeg")},
                                   headers={"Idempotency-Key": key})
            replay_ids[key] = answer.json().get("id", -1)

        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM case_media")).scalar_one()
            distinct_ids = conn.execute(text(
                "SELECT count(DISTINCT idempotency_key) FROM case_media")).scalar_one()
        ms = sorted(latencies)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else float("nan")
        mb_per_s = sum(sizes) / len(sizes) * len(acked) / wall
        print(f"[{BASELINE}] uploads: {len(acked)} acknowledged in {wall:.1f} s = "
              f"{len(acked) / wall:.1f} uploads/s ({mb_per_s:.0f} MB/s); latency p50 "
              f"{statistics.median(ms):.0f} ms, p99 {p99:.0f} ms, max {ms[-1]:.0f} ms")
        print(f"[{BASELINE}] one photo in process (decode + {limits.thumb_px} px thumb + "
              f"{limits.public_px} px public copy):"
              f" median {statistics.median(costs):.0f} ms, max {max(costs):.0f} ms")
        same = sum(replay_ids[key] == acked.get(key) for key in replay_ids)
        exact = stored == len(acked) == distinct_ids and same == len(replay_ids)
        print(f"[{BASELINE}] stored rows {stored}, distinct keys {distinct_ids}, acknowledged "
              f"{len(acked)}, failed {len(failures)}; replays {len(replay_ids)}, answered with "
              f"the first id {same}: {'nothing lost or duplicated' if exact else 'MISMATCH'}")
        for failure in failures[:5]:
            print("  failed:", failure)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        engine.dispose()
        drop_database(url)
        subprocess.run(["rm", "-rf", media_dir], check=False)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    app()
