"""Start-up warm-ups on daemon threads: started after startup, stopped before shutdown."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from fastapi import FastAPI

log = logging.getLogger(__name__)


def start_warmup(app: FastAPI, attr: str, name: str,
                 work: Callable[[threading.Event], object]) -> threading.Event:
    """Run `work(stop)` in a daemon thread kept as app.state.<attr>; returns its stop event."""
    stop = threading.Event()

    def run() -> None:
        try:
            work(stop)
        except Exception:  # a warm-up that fails costs the first visitor time, nothing else
            log.warning("%s failed", name, exc_info=True)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    setattr(app.state, attr, (thread, stop))
    return stop


WARMUPS = ("tile_warmup", "analysis_warmup")


def wait_for_warmups(app: FastAPI, timeout: float) -> bool:
    """Wait until every start-up warm-up of `app` has ended; False if one still runs."""
    for attr in WARMUPS:
        running = getattr(app.state, attr, None)
        if running is not None:
            running[0].join(timeout=timeout)
            if running[0].is_alive():
                return False
    return True


def stop_warmup(app: FastAPI, attr: str, timeout: float) -> None:
    """Ask the warm-up to stop (between two steps) and wait for it, before engines go."""
    running = getattr(app.state, attr, None)
    if running is not None:
        thread, stop = running
        stop.set()
        thread.join(timeout=timeout)
