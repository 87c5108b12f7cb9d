"""Data versions: one counter per table the analyses read, moved by the editing transaction.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03

The analysis result cache (gis.analysis.result_cache) keys a result by the versions of the
tables it read. Statement triggers set `data_versions.version` of the edited table to the next
value of one sequence inside the editing transaction, as migration 0016 does for routing: the
new number becomes visible together with the edit, a rolled-back edit leaves the committed
number behind, and a result computed while an edit was open is keyed by the version before it.
One row per table, so writers of different tables never wait for each other.
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

APP_ROLE = "citygrid_app"
TABLES = ("cases", "case_transitions", "case_extensions", "streetlights", "manhole_covers",
          "roads", "stations", "grid_cells", "grid_owners", "communities", "subdistricts",
          "districts", "deadline_rules", "event_categories", "component_classes", "facilities")

SCHEMA = """
CREATE SEQUENCE data_versions_seq;
CREATE TABLE data_versions (
    table_name text PRIMARY KEY,
    version bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION data_version_bump() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE data_versions SET version = nextval('data_versions_seq'), changed_at = now()
    WHERE table_name = TG_TABLE_NAME;
    RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION data_version_bump() FROM PUBLIC;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    for table in TABLES:
        op.execute(f"INSERT INTO data_versions (table_name, version) "
                   f"VALUES ('{table}', nextval('data_versions_seq'))")
        op.execute(f"CREATE TRIGGER {table}_data_version AFTER INSERT OR UPDATE OR DELETE "
                   f"OR TRUNCATE ON {table} FOR EACH STATEMENT "
                   "EXECUTE FUNCTION data_version_bump()")
    # Derived: staff read the counters, only the triggers move them.
    op.execute(f"GRANT SELECT ON data_versions TO {APP_ROLE}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON data_versions FROM {APP_ROLE}")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_data_version ON {table}")
    op.execute("DROP FUNCTION IF EXISTS data_version_bump()")
    op.execute("DROP TABLE IF EXISTS data_versions")
    op.execute("DROP SEQUENCE IF EXISTS data_versions_seq")
