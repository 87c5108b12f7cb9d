"""Data versions for stall_zones and sensitive_sites, so the planner page can be kept.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-04

The planner page (`GET /planner`) reads every road, sensitive site, district outline and live
stall zone and renders them with folium: ~0.6-0.8 s of server time on every visit. The page is
now kept per process and keyed by the data versions of exactly those tables (as analyses are,
migration 0022), so a zone saved by any worker or any tool shows on the next visit. Roads and
districts already have counters; this adds the two tables that had none, with the same
triggers as every other counter since migration 0030 (moved at commit; TRUNCATE at once).
"""

from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None

TABLES = ("sensitive_sites", "stall_zones")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"INSERT INTO data_versions (table_name, version) "
                   f"VALUES ('{table}', nextval('data_versions_seq')) "
                   "ON CONFLICT (table_name) DO NOTHING")
        op.execute(f"CREATE TRIGGER {table}_data_version_truncate AFTER TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION data_version_bump()")
        op.execute(f"CREATE CONSTRAINT TRIGGER {table}_data_version "
                   f"AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                   f"WHEN (data_version_touch('{table}')) "
                   "EXECUTE FUNCTION data_version_bump_at_commit()")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_data_version ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_data_version_truncate ON {table}")
        op.execute(f"DELETE FROM data_versions WHERE table_name = '{table}'")
