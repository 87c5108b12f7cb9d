"""Benchmark (not a test): 200 field workers upload photos while the desk streams case events.

    .venv/bin/python bench/field.py                           # 200 workers x 3 photos, 8 in flight
    .venv/bin/python bench/field.py --workers 20 --baseline-workers 10

Builds a throwaway database (citygrid_bench_field_<pid>_<hex>) with two test grids and their
owners, one dispatched case per simulated grid worker, and starts `citygrid serve --workers 2`
as a separate process on a free loopback port with a temporary media folder. The client is
this one process (asyncio + httpx, `--in-flight` requests at once over all workers). Each
worker does what the phone does when it comes back online: handle (with a note), `--photos`
real JPEG photos of 2-4 MB with EXIF (DateTimeOriginal, GPS beside the case; camera-like
noise so they do not compress away, each made unique by a JPEG comment) as `handling` photos,
report back; every write carries its own `Idempotency-Key`, and every `--replay-every`-th
write is sent a second time with the same key (a phone whose answer was lost).

Phases, one server and database:
1. baseline (named `desk-off`): `--baseline-workers` workers, the same uploads, no desk stream;
2. the measure: `--workers` workers while one desk client streams `GET /events/cases` (as the
   dispatcher desk does). During it a probe commits a new case straight in PostgreSQL every
   `--probe-every` s (the `collect` row fires the same NOTIFY trigger as every change), so the
   commit instant is known to a few ms: commit -> desk delay = arrival - COMMIT sent (an upper
   bound; goal p99 < 1 s). For the workers' own handle/report events the delay is bounded by
   the request's start (queueing included) and printed as well.

Prints uploads/s, upload p50/p99, the in-process decode + thumbnail + EXIF-free public copy time
of one photo, event delays, acknowledged vs stored vs duplicated counts (photos: rows, rows per
Idempotency-Key; actions: transitions) and the ratios to the baseline. Exit 1 on a mismatch.
Clients, server and PostgreSQL share the machine's cores, so the figures are a floor.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import typer
from PIL import Image
from sqlalchemy import text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load import _free_port, wait_for_health  # noqa: E402
from media import photo_costs_ms  # noqa: E402

from gis.access import auth  # noqa: E402
from gis.dispatch.cases import create_case, transition  # noqa: E402
from gis.platform.db import make_engine, transaction  # noqa: E402
from gis.platform.settings import Settings  # noqa: E402
from tests.field.conftest import EAST_POINT, OWNER_WEST, WEST_POINT, seed  # noqa: E402
from tests.support.databases import seeded_database  # noqa: E402
from tests.support.photos import EXIF_IFD, GPS_IFD, _dms  # noqa: E402

BASELINE = "desk-off"


def camera_photo(seed_: int, taken: dt.datetime) -> bytes:
    """A 2-4 MB JPEG with EXIF time and GPS beside the case, like a phone photo."""
    rng = np.random.default_rng(seed_)
    w, h = rng.choice([(2000, 1500), (2400, 1800), (2592, 1944)])
    base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3))
    noisy = np.clip(base * 0.5 + rng.normal(96, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "BenchPhone", "BP-14"
    exif.get_ifd(EXIF_IFD)[36867] = taken.strftime("%Y:%m:%d %H:%M:%S")
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2], gps[3], gps[4] = "N", _dms(WEST_POINT[1]), "E", _dms(WEST_POINT[0])
    out = io.BytesIO()
    Image.fromarray(noisy, "RGB").save(out, format="JPEG", exif=exif,
                                       quality=int(rng.integers(80, 90)))
    return out.getvalue()


def unique(photo: bytes, tag: str) -> bytes:
    """The same picture with a JPEG comment naming the upload: another SHA-256, same work."""
    comment = tag.encode()
    return photo[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + photo[2:]


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0-1) of `values`, nearest rank; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Phase:
    """What one phase sent, what was answered, and how long it took."""

    upload_ms: list[float] = field(default_factory=list)
    action_ms: list[float] = field(default_factory=list)
    photo_ids: dict[str, int] = field(default_factory=dict)  # key -> media id acknowledged
    actions: dict[tuple[int, str], tuple[float, float]] = field(default_factory=dict)
    replays: int = 0
    replays_same: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def prepare(engine: Any, cases: int) -> tuple[list[int], str, str]:
    """`cases` dispatched cases in the west grid, a dispatcher's and a grid owner's token."""
    ids = []
    with transaction(engine) as session:
        for k in range(cases):
            # Two days apart (repeat window one day): no repeat groups, whose linking would
            # update many case rows at once and make this a benchmark of lock waits.
            at = dt.datetime.now(dt.UTC) - dt.timedelta(days=2 * k + 2)
            case = create_case(session, category_type="event", category_code="0102",
                               channel="patrol", x=WEST_POINT[0], y=WEST_POINT[1],
                               reported_at=at, actor="bench", repeat_window_days=1)
            for action in ("file", "dispatch"):
                transition(session, case.id, action, actor="bench", at=at)
            ids.append(case.id)
        tokens = []
        for role, owner in (("dispatcher", None), ("grid_owner", OWNER_WEST)):
            user = auth.create_user(session, username=f"bench-{role}-{uuid.uuid4().hex[:8]}",
                                    password=uuid.uuid4().hex, role=role, owner_name=owner)
            tokens.append(auth.issue_token(session, user=user))
    return ids, tokens[0], tokens[1]


async def run_workers(base: str, token: str, cases: list[int], photos: list[bytes], *,
                      per_worker: int, in_flight: int, replay_every: int) -> Phase:
    """Every case is one worker: handle, photos, report; each write with its own key."""
    phase = Phase()
    gate = asyncio.Semaphore(in_flight)
    sent = 0
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as client:

        async def send(kind: str, make: Any) -> httpx.Response | None:
            nonlocal sent
            key = str(uuid.uuid4())
            sent += 1
            times = 2 if replay_every and sent % replay_every == 0 else 1
            first = None
            for attempt in range(times):
                async with gate:
                    started = time.monotonic()
                    try:
                        response = await client.post(**make(), headers={"Idempotency-Key": key})
                    except httpx.HTTPError as error:
                        phase.errors.append(f"{kind}: {error!r}")
                        return first
                    ended = time.monotonic()
                if response.status_code >= 300:
                    phase.errors.append(f"{kind}: {response.status_code} {response.text[:120]}")
                    return first
                if attempt == 0:
                    first = response
                    (phase.upload_ms if kind == "photo" else phase.action_ms).append(
                        (ended - started) * 1000)
                    response.extensions["times"] = (started, ended)
                    if kind == "photo":
                        phase.photo_ids[key] = response.json()["id"]
                else:
                    phase.replays += 1
                    replayed = response.headers.get("Idempotency-Replayed")
                    same = (replayed == "true" and first is not None
                            and response.json() == first.json())
                    phase.replays_same += same
                    if not same:
                        phase.errors.append(f"{kind} replay differs: {response.headers} "
                                            f"{response.text[:300]}")
            return first

        async def worker(case_id: int) -> None:
            for action in ("handle", "report"):
                r = await send(action, lambda a=action: {
                    "url": f"/cases/{case_id}/actions/{a}", "json": {"note": "bench"}})
                if r is not None:
                    phase.actions[(case_id, action)] = r.extensions["times"]
                if action == "handle":
                    for k in range(per_worker):
                        data = unique(photos[(case_id + k) % len(photos)], f"c{case_id}-p{k}")
                        await send("photo", lambda d=data, n=k: {
                            "url": f"/cases/{case_id}/media", "data": {"stage": "handling"},
                            "files": {"file": (f"p{n}.jpg", d, "image/jpeg")}})

        started = time.monotonic()
        await asyncio.gather(*(worker(c) for c in cases))
        phase.seconds = time.monotonic() - started
    return phase


async def desk_stream(base: str, token: str, arrivals: list[tuple[float, dict[str, Any]]],
                      listening: asyncio.Event) -> None:
    """The dispatcher desk: stream /events/cases, note when each event arrives."""
    async with httpx.AsyncClient(base_url=base, timeout=None,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        async with client.stream("GET", "/events/cases", params={"heartbeat": 1}) as response:
            name, data = "message", []
            async for line in response.aiter_lines():
                if line.startswith(": listening"):
                    listening.set()
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    if name == "case":
                        arrivals.append((time.monotonic(), json.loads("\n".join(data))))
                    name, data = "message", []


def probe_commit(engine: Any, n: int) -> tuple[int, float, float]:
    """Commit one new case straight in PostgreSQL; (case id, COMMIT sent, COMMIT returned)."""
    with engine.connect() as conn, conn.begin() as tx:
        session = Session(bind=conn)
        # In the east grid, two days apart: no repeat links to the workers' cases or others.
        case = create_case(session, category_type="event", category_code="0102",
                           channel="patrol", x=EAST_POINT[0], y=EAST_POINT[1],
                           reported_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2 * n),
                           actor="bench-probe", repeat_window_days=1)
        session.flush()
        before = time.monotonic()
        tx.commit()
        return case.id, before, time.monotonic()


async def measure(base: str, engine: Any, desk: str, owner: str, cases: list[int],
                  photos: list[bytes], *, per_worker: int, in_flight: int, replay_every: int,
                  probe_every: float) -> tuple[Phase, dict[str, Any]]:
    """The measured phase: workers upload while the desk streams and the probe commits."""
    arrivals: list[tuple[float, dict[str, Any]]] = []
    listening = asyncio.Event()
    stream = asyncio.create_task(desk_stream(base, desk, arrivals, listening))
    await asyncio.wait_for(listening.wait(), 30)
    probes: dict[int, tuple[float, float]] = {}
    done = asyncio.Event()

    async def probe() -> None:
        n = 0
        while not done.is_set():
            n += 1
            case_id, before, after = await asyncio.to_thread(probe_commit, engine, n)
            probes[case_id] = (before, after)
            await asyncio.sleep(probe_every)

    prober = asyncio.create_task(probe())
    phase = await run_workers(base, owner, cases, photos, per_worker=per_worker,
                              in_flight=in_flight, replay_every=replay_every)
    done.set()
    await prober
    await asyncio.sleep(2)  # the last events
    stream.cancel()
    probe_ms, action_ms, ahead = [], [], 0
    for at, data in arrivals:
        case_id = data.get("case_id")
        if case_id in probes and data.get("action") == "collect":
            probe_ms.append((at - probes[case_id][0]) * 1000)
        sent = phase.actions.get((int(case_id or 0), str(data.get("action"))))
        if sent is not None:
            action_ms.append((at - sent[0]) * 1000)
            ahead += at <= sent[1]
    events = {
        "probe_commits": len(probes), "probe_events": len(probe_ms),
        "commit_to_desk_p50_ms": round(pct(probe_ms, .5), 1),
        "commit_to_desk_p99_ms": round(pct(probe_ms, .99), 1),
        "commit_to_desk_max_ms": round(max(probe_ms, default=float("nan")), 1),
        "action_events": len(action_ms),
        "action_events_before_writers_answer": ahead,
        "action_start_to_desk_p50_ms": round(pct(action_ms, .5), 1),
        "action_start_to_desk_p99_ms": round(pct(action_ms, .99), 1),
    }
    return phase, events


def summary(phase: Phase) -> dict[str, Any]:
    """Throughput and latency figures of a phase."""
    return {
        "photos_acknowledged": len(phase.photo_ids), "seconds": round(phase.seconds, 1),
        "uploads_per_s": round(len(phase.photo_ids) / phase.seconds, 2),
        "upload_p50_ms": round(pct(phase.upload_ms, .5), 1),
        "upload_p99_ms": round(pct(phase.upload_ms, .99), 1),
        "action_p50_ms": round(pct(phase.action_ms, .5), 1),
        "action_p99_ms": round(pct(phase.action_ms, .99), 1),
        "replays": phase.replays, "replays_answered_same": phase.replays_same,
        "errors": len(phase.errors),
    }


def stored(engine: Any, cases: list[int]) -> dict[str, int]:
    """Rows in the database for `cases`: transitions, photos, photos per key."""
    with engine.connect() as conn:
        return {
            "transitions_stored": conn.execute(text(
                "SELECT count(*) FROM case_transitions WHERE action IN ('handle', 'report') "
                "AND case_id = ANY(:c)"), {"c": cases}).scalar_one(),
            "photos_stored": conn.execute(text(
                "SELECT count(*) FROM case_media WHERE case_id = ANY(:c)"),
                {"c": cases}).scalar_one(),
            "photo_keys_stored_twice": conn.execute(text(
                "SELECT count(*) FROM (SELECT idempotency_key FROM case_media "
                "WHERE case_id = ANY(:c) GROUP BY 1 HAVING count(*) > 1) d"),
                {"c": cases}).scalar_one(),
        }


def main(workers: int = typer.Option(200, help="simulated grid workers (one case each)"),
         photos: int = typer.Option(3, help="photos per worker (2-4 MB, with EXIF)"),
         baseline_workers: int = typer.Option(50, help="workers of the desk-off baseline "
                                                       "(0: skip)"),
         in_flight: int = typer.Option(8, min=1, help="requests in flight over all workers"),
         server_workers: int = typer.Option(2, min=1, help="citygrid serve --workers"),
         replay_every: int = typer.Option(10, help="send every n-th write twice (0: never)"),
         probe_every: float = typer.Option(0.25, help="seconds between probe commits"),
         distinct: int = typer.Option(6, help="distinct base pictures generated"),
         keep_db: bool = typer.Option(False, help="keep the throwaway database")) -> None:
    """Run the baseline and the measure against a separate server process; print figures."""
    settings = Settings()
    if keep_db:
        os.environ["CITYGRID_KEEP_TEST_DB"] = "1"
    # EXIF time is the phone's local wall time (Beijing), half an hour before the upload.
    taken = dt.datetime.now(ZoneInfo("Asia/Shanghai")) - dt.timedelta(minutes=30)
    bases = [camera_photo(k, taken) for k in range(distinct)]
    sizes = [len(b) / 1e6 for b in bases]
    costs = photo_costs_ms(bases)
    media_dir = tempfile.mkdtemp(prefix="citygrid-bench-field-")
    figures: dict[str, Any] = {
        "baseline": BASELINE, "cpus": os.cpu_count(), "load_avg_at_start":
        round(os.getloadavg()[0], 1), "server_workers": server_workers, "in_flight": in_flight,
        "photo_mb": f"{min(sizes):.1f}-{max(sizes):.1f}",
        "thumbnail_ms_median": round(statistics.median(costs), 1),
        "thumbnail_ms_max": round(max(costs), 1)}
    ok = False
    try:
        for url in seeded_database(settings, "bench_field", seed):
            engine = make_engine(url)
            cases, desk, owner = prepare(engine, baseline_workers + workers)
            env = {**os.environ, "CITYGRID_DATABASE_URL": url.render_as_string(
                hide_password=False), "CITYGRID_MEDIA_DIR": media_dir}
            port = _free_port()
            log = open(Path(media_dir) / "server.log", "wb")
            server = subprocess.Popen(
                [str(ROOT / ".venv/bin/citygrid"), "serve", "--workers", str(server_workers),
                 "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT,
                stdout=log, stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_for_health(server, base, "citygrid serve")
                kw = {"per_worker": photos, "in_flight": in_flight,
                      "replay_every": replay_every}
                before = None
                if baseline_workers:
                    before = asyncio.run(run_workers(
                        base, owner, cases[:baseline_workers], bases, **kw))
                    figures[BASELINE] = summary(before)
                    print(f"[{BASELINE}]", json.dumps(figures[BASELINE]), flush=True)
                during, events = asyncio.run(measure(
                    base, engine, desk, owner, cases[baseline_workers:], bases,
                    probe_every=probe_every, **kw))
            finally:
                server.terminate()
                server.wait(timeout=60)
                log.close()
            figures["desk-on"] = summary(during)
            figures["events"] = events
            counts = stored(engine, cases[baseline_workers:])
            figures["desk-on"].update(counts, actions_acknowledged=len(during.actions))
            if before is not None:
                b = figures[BASELINE]
                figures["ratio_desk_on_to_off"] = {
                    "uploads_per_s": round(figures["desk-on"]["uploads_per_s"]
                                           / b["uploads_per_s"], 2),
                    "upload_p50": round(figures["desk-on"]["upload_p50_ms"]
                                        / b["upload_p50_ms"], 2),
                    "upload_p99": round(figures["desk-on"]["upload_p99_ms"]
                                        / b["upload_p99_ms"], 2)}
            engine.dispose()
            d = figures["desk-on"]
            ok = (not during.errors and d["photos_stored"] == d["photos_acknowledged"]
                  == workers * photos and d["photo_keys_stored_twice"] == 0
                  and d["transitions_stored"] == d["actions_acknowledged"] == 2 * workers
                  and during.replays == during.replays_same
                  and events["probe_events"] == events["probe_commits"]
                  and events["action_events"] == 2 * workers)
            for error in during.errors[:5]:
                print("  error:", error)
    finally:
        shutil.rmtree(media_dir, ignore_errors=True)
    print(json.dumps(figures, ensure_ascii=False, indent=1))
    print("nothing lost or duplicated" if ok else "MISMATCH: see the figures above")
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    typer.run(main)
