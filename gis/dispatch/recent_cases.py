"""The desk's 新建/最近 list: cases just filed, newest first, so a new case is seen at once.

The 待办 lists order by deadline (most overdue first), where a case filed a minute ago sits
behind hundreds of overdue ones; this list answers "what did I (and the centre) just file".
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.dispatch.cases import _CASE_COLUMNS, Case
from gis.platform.errors import InvalidInputError

DEFAULT_HOURS = 24
MAX_HOURS = 24 * 31


def list_recent(session: Session, *, actor: str | None, at: dt.datetime | None = None,
                hours: int = DEFAULT_HOURS, mine_only: bool = False, limit: int = 100,
                offset: int = 0) -> list[Case]:
    """Cases reported in the `hours` before `at` or filed by `actor`, newest first."""
    if not 1 <= hours <= MAX_HOURS:
        raise InvalidInputError(f"hours {hours} must be 1..{MAX_HOURS}")
    if limit < 1 or offset < 0:
        raise InvalidInputError(f"limit {limit} must be >= 1 and offset {offset} >= 0")
    at = at or dt.datetime.now(dt.UTC)
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInputError(f"at {at.isoformat()} has no time zone; give an offset")
    # Who filed a case is the actor of its 'collect' row in the audit trail.
    mine = ("SELECT t.case_id FROM case_transitions t "
            "WHERE t.action = 'collect' AND t.actor = :actor")
    recent = "SELECT r.id FROM cases r WHERE r.reported_at BETWEEN :since AND :at"
    if mine_only:
        if not actor:
            raise InvalidInputError("mine_only needs the user who filed the cases")
        where = f"c.id IN ({mine}) AND c.reported_at <= :at"
    elif actor:
        where = f"c.id IN ({recent} UNION {mine}) AND c.reported_at <= :at"
    else:
        where = f"c.id IN ({recent})"
    rows = session.execute(text(f"""
        SELECT {_CASE_COLUMNS} FROM cases c WHERE {where}
        ORDER BY c.reported_at DESC, c.id DESC LIMIT :limit OFFSET :offset"""), {
        "actor": actor, "since": at - dt.timedelta(hours=hours), "at": at, "limit": limit,
        "offset": offset}).mappings().all()
    return [Case(**row) for row in rows]
