"""Throttle counts that every app process shares, kept in PostgreSQL (migration 0026).

The in-process throttle (gis.access.throttle) answers first and alone sees attempts in flight;
these counts make the budget one budget for all workers and hosts: five wrong passwords spread
over four workers lock the account as five on one worker do, and a client's hourly 随手拍 quota
holds whichever worker takes the upload. Times are the database's clock (`clock_timestamp()`),
the one clock every process shares.
"""

from __future__ import annotations

import math
import random

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.access.throttle import KeyThrottle

# Stale rows go on about one write in PURGE_EVERY; the tables stay small without a job.
PURGE_EVERY = 50


def sign_in_wait(session: Session, *, user_key: str, address: str) -> int:
    """Whole seconds until both the account and the address may try again (0: now)."""
    wait = session.execute(text("""
        SELECT extract(epoch FROM max(locked_until) - clock_timestamp())
        FROM sign_in_failures
        WHERE locked_until > clock_timestamp()
          AND ((kind = 'user' AND key = :user_key) OR (kind = 'address' AND key = :address))"""),
        {"user_key": _key(user_key), "address": _key(address)}).scalar()
    return math.ceil(float(wait)) if wait else 0


def record_sign_in_failure(session: Session, *, kind: str, key: str,
                           policy: KeyThrottle) -> tuple[int, int]:
    """Count a failure of `key` for all processes: (failures in a row, lockout seconds)."""
    params = {"kind": kind, "key": _key(key), "window": policy.window_s}
    # The row lock of the upsert orders concurrent failures of one key across processes.
    failures = session.execute(text("""
        INSERT INTO sign_in_failures AS f (kind, key, failures, last_failure)
        VALUES (:kind, :key, 1, clock_timestamp())
        ON CONFLICT (kind, key) DO UPDATE SET
            failures = CASE WHEN f.last_failure < clock_timestamp() - make_interval(secs => :window)
                             AND f.locked_until <= clock_timestamp()
                            THEN 1 ELSE f.failures + 1 END,
            last_failure = clock_timestamp()
        RETURNING failures"""), params).scalar_one()
    lockout = math.ceil(policy.lockout_s(failures))
    if lockout:
        session.execute(text("""
            UPDATE sign_in_failures
            SET locked_until = clock_timestamp() + make_interval(secs => :lockout)
            WHERE kind = :kind AND key = :key"""), {**params, "lockout": lockout})
    if _purge_now():
        session.execute(text("""
            DELETE FROM sign_in_failures
            WHERE last_failure < clock_timestamp() - make_interval(secs => :window)
              AND locked_until <= clock_timestamp()"""), params)
    return failures, lockout


def forget_sign_in_failures(session: Session, *, user_key: str) -> None:
    """A successful sign-in clears the account's count (not the address's: see LoginThrottle)."""
    session.execute(text("DELETE FROM sign_in_failures WHERE kind = 'user' AND key = :key"),
                    {"key": _key(user_key)})


def count_hit(session: Session, *, scope: str, key: str, limit: int,
              window_s: int = 3600) -> int:
    """Count one hit of `key`; 0 while within `limit` per sliding window, else seconds to wait.

    A sliding-window counter: the previous fixed window's hits weigh by how much of it still
    overlaps the last `window_s` seconds, so a burst at a window's edge does not get twice the
    quota. Refused hits count too: hammering does not reset anything.
    """
    row = session.execute(text("""
        WITH now AS (SELECT extract(epoch FROM clock_timestamp()) AS t),
        slot AS (SELECT to_timestamp(floor(t / :w) * :w) AS start, t FROM now),
        hit AS (
            INSERT INTO rate_windows AS r (scope, key, window_start, hits)
            SELECT :scope, :key, start, 1 FROM slot
            ON CONFLICT (scope, key, window_start) DO UPDATE SET hits = r.hits + 1
            RETURNING hits, window_start)
        SELECT hit.hits,
               coalesce((SELECT p.hits FROM rate_windows p
                         WHERE p.scope = :scope AND p.key = :key
                           AND p.window_start = hit.window_start - make_interval(secs => :w)),
                        0) AS previous,
               slot.t - extract(epoch FROM hit.window_start) AS elapsed
        FROM hit, slot"""), {"scope": scope, "key": _key(key), "w": window_s}).one()
    if _purge_now():
        session.execute(text("""
            DELETE FROM rate_windows
            WHERE window_start < clock_timestamp() - make_interval(secs => 2 * :w)"""),
            {"w": window_s})
    elapsed = float(row.elapsed)
    overlap = max(0.0, 1.0 - elapsed / window_s)
    if row.previous * overlap + row.hits <= limit:
        return 0
    # Wait until the current window alone would admit one more, or it ends.
    return max(1, math.ceil(window_s - elapsed))


def _key(value: str) -> str:
    # PostgreSQL text holds no NUL and the driver wants valid UTF-8: hostile usernames still
    # count (against their cleaned form) instead of failing the statement.
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")[:128]


def _purge_now() -> bool:
    # Housekeeping odds, not security: any generator does.
    return random.random() < 1.0 / PURGE_EVERY
