"""Routing version: a counter the in-process routing index (gis.dispatch.engine) checks per call.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05

Statement triggers on every table the index compiles (grid cells, owners, communities,
streets, stations, stall zones) set `routing_version.version` to the next value of a sequence,
in the editing transaction: the new number becomes visible together with the edit, and a
rolled-back edit leaves the committed number behind and never reuses its own, so an index
built inside that transaction never looks current afterwards.
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

APP_ROLE = "citygrid_app"
TABLES = ("grid_cells", "grid_owners", "communities", "subdistricts", "stations", "stall_zones")

SCHEMA = """
CREATE TABLE routing_version (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE routing_version_seq;
INSERT INTO routing_version (version) VALUES (nextval('routing_version_seq'));

CREATE FUNCTION routing_version_bump() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE routing_version SET version = nextval('routing_version_seq'), changed_at = now();
    RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION routing_version_bump() FROM PUBLIC;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    for table in TABLES:
        op.execute(f"CREATE TRIGGER {table}_routing_version AFTER INSERT OR UPDATE OR DELETE "
                   f"OR TRUNCATE ON {table} FOR EACH STATEMENT "
                   "EXECUTE FUNCTION routing_version_bump()")
    # Derived: the app reads the counter, only the triggers move it.
    op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON routing_version FROM {APP_ROLE}")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_routing_version ON {table}")
    op.execute("DROP FUNCTION IF EXISTS routing_version_bump()")
    op.execute("DROP TABLE IF EXISTS routing_version")
    op.execute("DROP SEQUENCE IF EXISTS routing_version_seq")
