"""Repeat complaints: same category, near the same place or in the same grid, within a window.

A new case joins the group of every earlier case it matches (groups merge, so linking is
transitive); a group of `supervise_from` or more cases goes on the 重点督办 (supervised) list.
Distances are in metres on the spheroid (geography), never in degrees.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from gis.dispatch.workflow import OPEN_STATUSES
from gis.platform.errors import InvalidInputError

DEFAULT_RADIUS_M = 50.0
DEFAULT_WINDOW_DAYS = 30
DEFAULT_SUPERVISE_FROM = 3


@dataclass(frozen=True)
class RepeatLink:
    """What linking did to one case: the case it repeats, its group and the group's size."""

    case_id: int
    repeat_of: int | None
    group_id: int | None
    group_size: int
    supervised: bool
    matched_case_ids: tuple[int, ...]


@dataclass(frozen=True)
class SupervisedGroup:
    """A group of repeat complaints on the 重点督办 list."""

    group_id: int
    category_type: str
    category_code: str
    case_ids: tuple[int, ...]
    case_count: int
    open_count: int
    first_reported_at: dt.datetime
    last_reported_at: dt.datetime
    grid_codes: tuple[str, ...]
    case_nos: tuple[str, ...] = ()  # the case numbers of case_ids, same order


def link_repeats(session: Session, *, case_id: int, radius_m: float = DEFAULT_RADIUS_M,
                 window_days: int = DEFAULT_WINDOW_DAYS,
                 supervise_from: int = DEFAULT_SUPERVISE_FROM) -> RepeatLink:
    """Link case `case_id` to earlier matching cases and flag its group when large enough."""
    if not radius_m > 0:
        raise InvalidInputError(f"repeat radius must be positive metres, not {radius_m}")
    if window_days <= 0:
        raise InvalidInputError(f"repeat window must be positive days, not {window_days}")
    if supervise_from < 2:
        raise InvalidInputError(f"supervision threshold must be at least 2, not {supervise_from}")
    # Linkers of one category take turns (until their transaction ends): two complaints at one
    # spot filed at once each merged the group's rows in their own order and deadlocked, and
    # neither saw the other; in turns, the second sees the first and joins its group.
    session.execute(text("""
        SELECT pg_advisory_xact_lock(hashtextextended(
            'citygrid.repeats:' || category_type || ':' || category_code, 0))
        FROM cases WHERE id = :case_id"""), {"case_id": case_id})
    # Earlier = reported before (ties by id), so a back-filled case links to the right ones.
    # Rejected complaints (不予立案) were out of scope, so they do not make a repeat.
    # The new case's values come in as init-plan constants, so the time window is an index
    # range on reported_at; as a plain join the planner scanned every case (~40 ms at 50k).
    matches = session.execute(text("""
        WITH n AS MATERIALIZED (SELECT id, category_type, category_code, reported_at,
                                       grid_code, geom FROM cases WHERE id = :case_id)
        SELECT e.id, coalesce(e.repeat_group_id, e.id) AS group_id
        FROM n, cases e
        WHERE e.category_type = (SELECT category_type FROM n)
          AND e.category_code = (SELECT category_code FROM n)
          AND e.reported_at BETWEEN (SELECT reported_at FROM n)
                                    - make_interval(days => :window_days)
                                AND (SELECT reported_at FROM n)
          AND e.id <> n.id AND e.status <> 'rejected'
          AND (e.reported_at, e.id) < (n.reported_at, n.id)
          AND (e.grid_code = n.grid_code
               OR ST_DWithin(e.geom::geography, n.geom::geography, :radius_m))
        ORDER BY e.reported_at DESC, e.id DESC"""),
        {"case_id": case_id, "window_days": window_days, "radius_m": radius_m}).all()
    if not matches:
        return RepeatLink(case_id=case_id, repeat_of=None, group_id=None, group_size=1,
                          supervised=False, matched_case_ids=())
    groups = sorted({m.group_id for m in matches})
    group_id = groups[0]  # the oldest root keeps the group's number when groups merge
    matched = tuple(m.id for m in matches)
    # Lock the group's rows in id order before changing them, so a workflow action holding
    # one of them waits in line instead of closing a cycle with this transaction.
    session.execute(text("""
        SELECT id FROM cases WHERE id IN :ids OR repeat_group_id IN :groups
        ORDER BY id FOR NO KEY UPDATE""").bindparams(
        bindparam("ids", expanding=True), bindparam("groups", expanding=True)),
        {"ids": [*matched, case_id, *groups], "groups": groups})
    session.execute(text("""
        UPDATE cases SET repeat_group_id = :group_id
        WHERE id IN :ids OR repeat_group_id IN :groups""").bindparams(
        bindparam("ids", expanding=True), bindparam("groups", expanding=True)),
        {"group_id": group_id, "ids": [*matched, case_id, *groups], "groups": groups})
    session.execute(text("UPDATE cases SET repeat_of = :repeat_of WHERE id = :case_id"),
                    {"repeat_of": matched[0], "case_id": case_id})
    size = session.execute(text("SELECT count(*) FROM cases WHERE repeat_group_id = :g"),
                           {"g": group_id}).scalar_one()
    supervised = size >= supervise_from
    if supervised:
        session.execute(text("""
            UPDATE cases SET supervised = true
            WHERE repeat_group_id = :g AND NOT supervised"""), {"g": group_id})
    return RepeatLink(case_id=case_id, repeat_of=matched[0], group_id=group_id,
                      group_size=size, supervised=supervised, matched_case_ids=matched)


def list_supervised(session: Session, *, open_only: bool = False) -> list[SupervisedGroup]:
    """Groups on the 重点督办 list, largest and most recent first."""
    rows = session.execute(text("""
        SELECT repeat_group_id AS group_id, min(category_type) AS category_type,
               min(category_code) AS category_code,
               array_agg(id ORDER BY reported_at, id) AS case_ids,
               array_agg(case_no ORDER BY reported_at, id) AS case_nos, count(*) AS case_count,
               count(*) FILTER (WHERE status IN :open) AS open_count,
               min(reported_at) AS first_reported_at, max(reported_at) AS last_reported_at,
               coalesce(array_agg(DISTINCT grid_code) FILTER (WHERE grid_code IS NOT NULL),
                        '{}') AS grid_codes
        FROM cases
        WHERE supervised
        GROUP BY repeat_group_id
        HAVING NOT :open_only OR count(*) FILTER (WHERE status IN :open) > 0
        ORDER BY count(*) DESC, max(reported_at) DESC, repeat_group_id""").bindparams(
        bindparam("open", expanding=True)),
        {"open": sorted(OPEN_STATUSES), "open_only": open_only}).mappings().all()
    return [SupervisedGroup(**{**row, "case_ids": tuple(row["case_ids"]),
                               "case_nos": tuple(row["case_nos"]),
                               "grid_codes": tuple(row["grid_codes"])}) for row in rows]
