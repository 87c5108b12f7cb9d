"""The time a field action was made: the phone's `acted_at`, kept when it can be true.

A grid worker who handles a case in a basement with no signal presses the button at 10:02;
the phone's queue sends it at 10:40. The case's timeline and deadlines must say 10:02, while
the server still notes when it arrived. A phone's clock can be wrong (or set), so the stamp is
kept only between the case's dispatch (and its last step: a timeline never runs backwards)
and the server's clock plus a small skew; outside, the step is recorded at the server's time
and flagged (`future`, `before_dispatch`, `before_last_step`) in `field_action_times`. A
light's or cover's state keeps the phone's time as its `updated_at` by the same rule (floor:
its previous change); the flag goes back in the answer and the audit log has the row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.assets.upkeep import COMPONENT_TABLES
from gis.platform.errors import InvalidInputError, NotFoundError

# Phones sync their clocks over the network; two minutes ahead is still an honest phone.
FUTURE_SKEW = dt.timedelta(minutes=2)
FLAGS = ("future", "before_dispatch", "before_last_step")


@dataclass(frozen=True)
class ActedAt:
    """What the phone said, what the case records, and why they differ (None: they do not)."""

    acted_at: dt.datetime
    at: dt.datetime
    flag: str | None


def settle(session: Session, case_id: int, acted_at: dt.datetime, *,
           now: dt.datetime | None = None, skew: dt.timedelta = FUTURE_SKEW) -> ActedAt:
    """The time to record for an action the phone stamped `acted_at` on case `case_id`."""
    if acted_at.tzinfo is None:
        raise InvalidInputError("acted_at needs a UTC offset (ISO 8601, e.g. +08:00)")
    now = now or dt.datetime.now(dt.UTC)
    row = session.execute(text("""
        SELECT max(at) FILTER (WHERE action = 'dispatch') AS dispatched_at, max(at) AS last_at
        FROM case_transitions WHERE case_id = :c"""), {"c": case_id}).mappings().one()
    if row["last_at"] is None:
        raise NotFoundError(f"case {case_id} does not exist")
    if row["dispatched_at"] is None or acted_at < row["dispatched_at"]:
        if acted_at <= now + skew:
            # The server's time, but never before the last step (the workflow refuses that).
            return ActedAt(acted_at=acted_at, at=max(now, row["last_at"]),
                           flag="before_dispatch")
    return clamp(acted_at, floor=row["last_at"], now=now, skew=skew)


def clamp(acted_at: dt.datetime, *, floor: dt.datetime | None, now: dt.datetime | None = None,
          skew: dt.timedelta = FUTURE_SKEW) -> ActedAt:
    """`acted_at` if not after now + `skew` nor before `floor` (the last change), else now."""
    if acted_at.tzinfo is None:
        raise InvalidInputError("acted_at needs a UTC offset (ISO 8601, e.g. +08:00)")
    now = now or dt.datetime.now(dt.UTC)
    flag = None
    if acted_at > now + skew:
        flag = "future"
    elif floor is not None and acted_at < floor:
        flag = "before_last_step"
    at = acted_at if flag is None else max(now, floor) if floor is not None else now
    return ActedAt(acted_at=acted_at, at=at, flag=flag)


def settle_component(session: Session, layer_id: str, code: str, acted_at: dt.datetime, *,
                     now: dt.datetime | None = None) -> ActedAt:
    """The time to record for a light's or cover's state the phone stamped `acted_at`."""
    if layer_id not in COMPONENT_TABLES:
        raise NotFoundError(f"layer {layer_id!r} has no component states")
    # Table name from the fixed list above; a component the caller may not see has no floor,
    # and the update that follows answers 404.
    floor = session.execute(text(f"SELECT updated_at FROM {layer_id} WHERE code = :c"),
                            {"c": code}).scalar()
    return clamp(acted_at, floor=floor, now=now)


def record(session: Session, settled: ActedAt, *, case_id: int, actor: str,
           transition_id: int | None = None, verification_id: int | None = None) -> None:
    """Keep the phone's stamp beside the step it timed (in the step's transaction)."""
    session.execute(text("""
        INSERT INTO field_action_times (case_id, transition_id, verification_id, actor,
                                        acted_at, recorded_at, flag)
        VALUES (:c, :t, :v, :a, :acted, :at, :flag)"""),
        {"c": case_id, "t": transition_id, "v": verification_id, "a": actor,
         "acted": settled.acted_at, "at": settled.at, "flag": settled.flag})
