"""POST /route in one database round trip: the caller's token, the index version and the rule.

The staff sign-in (api/auth.py) costs a token lookup, a statement tagging the transaction for
the audit trigger, a BEGIN and a ROLLBACK per request; single routing then reads the
routing version and the category's rule. Routing a complaint writes nothing, so none of the
tagging is needed, and the token can be checked in the very statement that reads the version:
`signed_check` runs that one statement on an autocommit connection of its own pool
(`check_engine`: no BEGIN, no ROLLBACK, no pre-ping).

The token is checked exactly as gis.access.auth.user_for_token checks it (SHA-256 of the
token, an active user, not revoked, not expired) at the moment of the request: a revoked
token, a disabled account or a changed role take effect on the very next request, in every
worker. With the sign-in cache (gis/dispatch/engine/route_cache.py) this statement is the
path of a first request and of every request while the cache's listener is not listening.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from gis.access.auth import User
from gis.dispatch.engine.single import CHECK_COLUMNS
from gis.platform.db import libpq_options, role_url, session_options
from gis.platform.settings import Settings

# single._CHECK (version + rule) with the token's user; no row of `s` when the token is bad.
_SIGNED_CHECK = f"""
SELECT {CHECK_COLUMNS},
       s.user_id, s.username, s.role, s.display_name, s.owner_name, s.district_code,
       s.expires_at
FROM routing_version v
LEFT JOIN LATERAL (
    SELECT r.code_prefix, r.rule_kind, r.responsible_unit, r.notes,
           (SELECT default_owner FROM component_classes WHERE code = :code) AS class_owner
    FROM responsibility_rules r
    WHERE r.category_type = :type AND :code LIKE r.code_prefix || '%'
    ORDER BY length(r.code_prefix) DESC LIMIT 1) r ON true
LEFT JOIN LATERAL (
    SELECT u.id AS user_id, u.username, u.role, u.display_name, u.owner_name,
           to_jsonb(u) ->> 'district_code' AS district_code,  -- NULL before migration 0028
           t.expires_at
    FROM api_tokens t JOIN users u ON u.id = t.user_id
    WHERE t.token_sha256 = :token AND u.active
      AND t.revoked_at IS NULL AND t.expires_at > now()) s ON true
"""
# The check row's routing part (single.CHECK_COLUMNS' names): what route_cache keeps per category.
CHECK_KEYS = ("version", "db", "db_role", "code_prefix", "rule_kind", "responsible_unit",
              "notes", "class_owner")


def check_engine(settings: Settings) -> Engine:
    """A pool for `signed_check`: the runtime role's connections (as the app's), in autocommit.

    Autocommit is set once per connection, not per checkout: switching a pooled connection
    to autocommit and back costs a round trip each time. No pre-ping either (another round
    trip per checkout): `signed_check` retries once when a connection turns out dead.
    """
    options = session_options(settings, "app")
    return create_engine(role_url(settings, "app"), isolation_level="AUTOCOMMIT",
                         pool_size=settings.db.pool_size, max_overflow=settings.db.pool_size,
                         pool_pre_ping=False,
                         connect_args={"options": libpq_options(options)})


def token_digest(token: str) -> str:
    """The SHA-256 hex digest api_tokens stores for `token` (as gis.access.auth does)."""
    return hashlib.sha256(token.encode()).hexdigest()


def signed_check(conn: Connection, *, token: str, category_type: str,
                 category_code: str | None) -> tuple[User | None, Mapping[str, Any]]:
    """The user holding `token` (None when unknown, expired or revoked) and the routing check.

    The check row's `district_code` names a district-scoped user's district (None for the
    centre): their requests are scoped in the session, so they do not take the index path.
    """
    params = {"token": token_digest(token), "type": category_type, "code": category_code or ""}
    try:
        row = conn.execute(text(_SIGNED_CHECK), params).mappings().one()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        # The server closed this pooled connection (restart, idle timeout): one fresh try
        # (rolling back the invalidated transaction lets the connection reconnect).
        conn.rollback()
        row = conn.execute(text(_SIGNED_CHECK), params).mappings().one()
    user = None if row["user_id"] is None else User(
        row["user_id"], row["username"], row["role"], row["display_name"], row["owner_name"])
    return user, dict(row)
