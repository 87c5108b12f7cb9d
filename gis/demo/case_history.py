"""Each demo case's workflow history up to the moment the demo is loaded, with real deadlines.

A case reported at `r` is filed and dispatched, handled, reported back and verified, each step
taking a drawn share of the time its deadline rule allows (a few per cent run late, a few
stall), and its status is whatever step it has reached at `now`. Deadlines come from the
deadline_rules table through `gis.dispatch.deadlines.add_duration`, exactly as the workflow sets
them, so the desk, the overdue lists and the indicators read the demo like a working bureau's:
old cases closed, recent ones in progress, a small share overdue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gis.dispatch.deadlines import CHINA_TZ, add_duration, is_working_day

# (step, category_type, category_code, urgency, area_type) -> (duration, unit) of the rule.
RuleLookup = Callable[[str, str, str, str, str], tuple[int, str]]

REJECT_SHARE = 0.03  # complaints refused at filing (not city management's business)
LATE_SHARE = {"dispatch": 0.04, "handle": 0.06, "verify": 0.06}  # steps that overrun
STALLED_SHARE = 0.001  # handled never: waits on another department, overdue until followed up
SURVEY_SHARE = 0.6  # closed cases whose complainant answers the satisfaction survey
SATISFACTION = {"satisfied": 0.86, "basically": 0.10, "unsatisfied": 0.04}


@dataclass(frozen=True)
class CaseHistory:
    """Per-case status and timestamps at `now` (NaT where the step was not reached)."""

    status: np.ndarray
    dispatch_due_at: pd.Series
    dispatched_at: pd.Series
    due_at: pd.Series
    verify_due_at: pd.Series
    closed_at: pd.Series
    surveyed_at: pd.Series
    replied_at: pd.Series
    satisfaction: pd.Series
    due_approximate: np.ndarray


def rule_lookup_from(session_rule: Callable[..., object]) -> RuleLookup:
    """A cached lookup of (duration, unit) built on `gis.dispatch.deadlines.find_rule`."""
    cache: dict[tuple[str, str, str, str, str], tuple[int, str]] = {}

    def lookup(step: str, kind: str, code: str, urgency: str, area: str) -> tuple[int, str]:
        key = (step, kind, code, urgency, area)
        if key not in cache:
            rule = session_rule(category_type=kind, category_code=code, urgency=urgency,
                                area_type=area, step=step)
            cache[key] = (rule.duration, rule.unit)  # type: ignore[attr-defined]
        return cache[key]

    return lookup


def _deadlines(step: str, starts: pd.Series, kinds: np.ndarray, codes: np.ndarray,
               urgency: np.ndarray, area: np.ndarray,
               rule: RuleLookup) -> tuple[pd.Series, np.ndarray]:
    """Due time of `step` for each case whose clock starts at `starts` (NaT: none).

    Vectorised over cases with the same rule: minutes and hours are added as they are; for
    working days `add_duration` runs once per start date (from its midnight) and the start's
    clock time is added back when that date is a working day, which is what `add_duration`
    does case by case (tests compare every demo case with it).
    """
    utc = pd.to_datetime(starts, utc=True)
    start_ns = utc.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    known = utc.notna().to_numpy()
    due_ns = np.full(len(utc), np.iinfo(np.int64).min)  # NaT
    approximate = np.zeros(len(utc), dtype=bool)
    combos = pd.DataFrame({"k": kinds, "c": codes, "u": urgency, "a": area})
    by_rule: dict[tuple[int, str], np.ndarray] = {}
    for combo, members in combos[known].groupby(["k", "c", "u", "a"]).groups.items():
        kind, code, urg, ar = (str(part) for part in combo)  # type: ignore[attr-defined]
        key = rule(step, kind, code, urg, ar)
        by_rule[key] = np.concatenate([by_rule.get(key, np.empty(0, int)),
                                       np.asarray(members)])
    offset_ns = int(pd.Timedelta(hours=8).value)  # China: UTC+8 all year, no DST
    day_ns = int(pd.Timedelta(days=1).value)
    for (duration, unit), rows in by_rule.items():
        if unit != "working_days":
            step_ns = int(pd.Timedelta(duration, unit="min" if unit == "minutes" else "h").value)
            due_ns[rows] = start_ns[rows] + step_ns
            continue
        local_midnight = (start_ns[rows] + offset_ns) // day_ns * day_ns - offset_ns
        days, which = np.unique(local_midnight, return_inverse=True)
        moved = np.empty(len(days), dtype=np.int64)
        working = np.empty(len(days), dtype=bool)
        approx = np.empty(len(days), dtype=bool)
        for i, midnight in enumerate(days):
            day = pd.Timestamp(int(midnight), tz="UTC").tz_convert(CHINA_TZ)
            when, approx[i] = add_duration(day.to_pydatetime(), duration=duration, unit=unit)
            moved[i] = pd.Timestamp(when).value
            working[i] = is_working_day(day.date())[0]
        due_ns[rows] = moved[which] + np.where(working[which],
                                               start_ns[rows] - days[which], 0)
        approximate[rows] = approx[which]
    due = pd.Series(pd.to_datetime(due_ns, utc=True)).dt.tz_convert(CHINA_TZ)
    return due.where(known), approximate


def _step_time(rng: np.random.Generator, allowed: pd.Series, step: str) -> pd.Series:
    """Time a step takes: a share of what its rule allows, over it for the late few."""
    n = len(allowed)
    share = np.where(rng.random(n) < LATE_SHARE[step], rng.uniform(1.05, 2.0, n),
                     rng.beta(2.0, 3.0, n) * 0.9 + 0.05)
    return pd.Series(allowed.to_numpy() * share).dt.floor("s")


def simulate_history(reported: pd.DatetimeIndex, kinds: np.ndarray, codes: np.ndarray,
                     urgency: np.ndarray, area: np.ndarray, channel: np.ndarray, *,
                     now: pd.Timestamp, rule: RuleLookup,
                     rng: np.random.Generator) -> CaseHistory:
    """Walk every case through the workflow up to `now` (reported times must be <= now)."""
    n = len(reported)
    rep = pd.Series(reported)
    dispatch_due, approx_d = _deadlines("dispatch", rep, kinds, codes, urgency, area, rule)
    dispatched = rep + _step_time(rng, dispatch_due - rep, "dispatch")
    rejected = rng.random(n) < REJECT_SHARE
    due, approx_h = _deadlines("handle", dispatched.where(~rejected), kinds, codes, urgency,
                               area, rule)
    handled = dispatched + _step_time(rng, due - dispatched, "handle")
    stalled = rng.random(n) < STALLED_SHARE
    handled = handled.where(~stalled)  # NaT: never reported back
    verify_due, approx_v = _deadlines("verify", handled.where(handled <= now), kinds, codes,
                                      urgency, area, rule)
    closed = handled + _step_time(rng, verify_due - handled, "verify")
    surveyed = closed + pd.to_timedelta(rng.uniform(2, 48, n), unit="h").floor("s")
    answers = rng.random(n) < SURVEY_SHARE

    on_site = dispatched + (handled - dispatched) * 0.8  # 处置 done, not yet reported back
    status = np.select(
        [rejected & (dispatched <= now), rejected | (rep + (dispatched - rep) / 2 > now),
         dispatched > now, answers & (surveyed <= now), closed <= now, handled <= now,
         on_site.notna() & (on_site <= now)],
        ["rejected", "collected", "filed", "evaluated", "closed", "reported", "handled"],
        "dispatched").astype(object)
    reached = {s: np.isin(status, states) for s, states in {
        "dispatch": ["dispatched", "handled", "reported", "closed", "evaluated"],
        "report": ["reported", "closed", "evaluated"],
        "close": ["closed", "evaluated"]}.items()}
    hotline = np.char.startswith(channel.astype(str), "hotline")
    replied = closed + pd.Timedelta(hours=2)
    evaluated = status == "evaluated"
    satisfaction = pd.Series(rng.choice(list(SATISFACTION), size=n,
                                        p=list(SATISFACTION.values()))).where(evaluated)
    return CaseHistory(
        status=status, dispatch_due_at=dispatch_due,
        dispatched_at=dispatched.where(reached["dispatch"]),
        due_at=due.where(reached["dispatch"]),
        verify_due_at=verify_due.where(reached["report"]),
        closed_at=closed.where(reached["close"]),
        surveyed_at=surveyed.where(evaluated),
        replied_at=replied.where(reached["close"] & hotline & (replied <= now)),
        satisfaction=satisfaction,
        due_approximate=approx_d | (approx_h & reached["dispatch"])
        | (approx_v & reached["report"]),
    )
