"""POST /route's in-process caches hear every change they depend on: NOTIFY citygrid_route_cache.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-03

Each app process keeps verified sign-ins (token digest -> user), the routing version and the
responsibility rules in memory for `POST /route` (gis/dispatch/engine/route_cache.py) and
listens on the channel `citygrid_route_cache`. Statement triggers here notify it from every
transaction that could make a cached answer wrong: a token revoked, deleted or shortened
(UPDATE/DELETE on api_tokens), a user disabled, deleted, renamed or given another role or
district (users), the index's version moving (routing_version) and a rule or a component
class's default owner edited. NOTIFY is transactional: listeners hear it when the edit
commits, never for a rollback. A new token (INSERT) needs no notice: only found sign-ins
are cached. The payload is the table's name; the processes drop their caches either way.
"""

from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

CHANNEL = "citygrid_route_cache"
TABLES = {
    "api_tokens": "UPDATE OR DELETE OR TRUNCATE",
    "users": "UPDATE OR DELETE OR TRUNCATE",
    "routing_version": "INSERT OR UPDATE OR DELETE OR TRUNCATE",
    "responsibility_rules": "INSERT OR UPDATE OR DELETE OR TRUNCATE",
    "component_classes": "INSERT OR UPDATE OR DELETE OR TRUNCATE",
}


def upgrade() -> None:
    op.execute(f"""
CREATE OR REPLACE FUNCTION route_cache_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
    RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION route_cache_notify() FROM PUBLIC;
""")
    for table, events in TABLES.items():
        op.execute(f"DROP TRIGGER IF EXISTS {table}_route_cache ON {table}")
        op.execute(f"CREATE TRIGGER {table}_route_cache AFTER {events} ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION route_cache_notify()")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_route_cache ON {table}")
    op.execute("DROP FUNCTION IF EXISTS route_cache_notify()")
