"""Read the append-only audit log that the database fills on every write (migration 0010)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from gis.platform.errors import InvalidInputError

AUDIT_ACTIONS = ("INSERT", "UPDATE", "DELETE", "BULK", "SIGN_IN")


def read_audit(session: Session, *, table: str | None = None, row_key: str | None = None,
               actor: str | None = None, action: str | None = None,
               since: dt.datetime | None = None, until: dt.datetime | None = None,
               limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Audit rows newest first, filtered by table, row key, actor, action and time."""
    if action is not None and action not in AUDIT_ACTIONS:
        raise InvalidInputError(f"unknown audit action {action!r}; expected one of "
                                f"{', '.join(AUDIT_ACTIONS)}")
    if since and until and since > until:
        raise InvalidInputError(f"since {since.isoformat()} is after until {until.isoformat()}")
    rows = session.execute(text("""
        SELECT id, at, actor, actor_role, action, table_name, row_key, before, after, request
        FROM audit_log
        WHERE (CAST(:table AS text) IS NULL OR table_name = :table)
          AND (CAST(:row_key AS text) IS NULL OR row_key = :row_key)
          AND (CAST(:actor AS text) IS NULL OR actor = :actor)
          AND (CAST(:action AS text) IS NULL OR action = :action)
          AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)
          AND (CAST(:until AS timestamptz) IS NULL OR at <= :until)
        ORDER BY id DESC LIMIT :limit OFFSET :offset"""),
        {"table": table, "row_key": row_key, "actor": actor, "action": action,
         "since": since, "until": until, "limit": limit, "offset": offset}).mappings()
    return [dict(r) for r in rows]


def record_bulk(session: Session | Connection, *, actor: str, table: str,
                summary: dict[str, Any]) -> None:
    """One audit row for a bulk load that ran with row auditing off (the demo seed)."""
    session.execute(text(
        "INSERT INTO audit_log (actor, action, table_name, after) "
        "VALUES (:a, 'BULK', :t, CAST(:s AS jsonb))"),
        {"a": actor, "t": table, "s": json.dumps(summary, default=str)})


# audit_log.action allows only INSERT / UPDATE / DELETE / BULK (migration 0010): a sign-in
# event is logged as an INSERT into the pseudo-table `sign_in`, its kind in `after.event`.
SIGN_IN_TABLE = "sign_in"


def _printable(value: str, limit: int) -> str:
    # PostgreSQL text holds no NUL and psycopg2 cannot send lone surrogates.
    cleaned = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return cleaned[:limit]


def record_sign_in(session: Session | Connection, *, username: str, event: str, address: str,
                   request: str, details: dict[str, Any] | None = None) -> None:
    """One audit row for a sign-in event (`failed`, `locked`) of `username` from `address`."""
    after = {"event": event, "address": _printable(address, 128), **(details or {})}
    session.execute(text(
        "INSERT INTO audit_log (actor, actor_role, action, table_name, row_key, after, request) "
        "VALUES ('anonymous', 'public', 'SIGN_IN', :t, :u, CAST(:s AS jsonb), :q)"),
        {"t": SIGN_IN_TABLE, "u": _printable(username, 128), "s": json.dumps(after),
         "q": _printable(request, 500)})
