"""The desk's case list reads the current-deadline index (migration 0037), not a full sort.

`list_cases` orders by `CURRENT_DUE_SQL`; the index is on the same expression, so a page of
300 of the demo city's ~56,000 cases is read in index order (was a scan and sort of all).
"""

from __future__ import annotations

import json
import re

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gis.dispatch.cases import list_cases


def _plan_of_list_cases(engine: Engine, **filters: object) -> tuple[str, list]:
    captured: list[tuple[str, object]] = []
    with engine.connect() as conn:
        def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:
            captured.append((statement, parameters))

        event.listen(conn, "before_cursor_execute", capture)
        found = list_cases(Session(bind=conn), limit=300, **filters)  # type: ignore[arg-type]
        event.remove(conn, "before_cursor_execute", capture)
        (statement, parameters), = [c for c in captured if "ORDER BY" in c[0]]
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        plan = cursor.fetchone()[0]
    return json.dumps(plan), found


def test_a_page_of_the_desk_list_is_read_in_index_order(demo_engine: Engine) -> None:
    plan, found = _plan_of_list_cases(demo_engine)
    # cases is partitioned by month (migration 0038): each month's copy of the index is read
    # in order and the months merged, with no sort.
    with demo_engine.connect() as conn:
        month_indexes = set(conn.execute(text(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'cases_current_due_idx'::regclass")).scalars())
    used = set(re.findall(r'"Index Name": "([^"]+)"', plan))
    assert used and used <= month_indexes, plan
    assert '"Merge Append"' in plan and '"Sort"' not in plan, plan
    assert len(found) == 300
    # The index's order is the list's order: nearest current deadline first, open cases
    # (with a deadline) before closed ones.
    dues = [c.current_due_at for c in found if c.current_due_at is not None]
    assert dues == sorted(dues)

