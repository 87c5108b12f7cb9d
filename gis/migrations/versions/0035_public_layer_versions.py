"""pub.layer_versions(): the data versions of the tables behind the public layers, for /ogc.

Revision ID: 0035
Revises: 0033
Create Date: 2026-12-04

The /ogc tile cache (api/ogc_tile_cache.py) keys a tile by the data version (migration 0022,
moved at commit since 0030) of the table its `pub` view reads. The anonymous role may read
only schema `pub`, not `data_versions`, so this SECURITY DEFINER function (fixed search
path) returns the counters of exactly those nine tables and nothing else: numbers that say
"changed", no rows. tipg lists no functions (api/ogc.py `catalog_settings`), so it is not a
collection. Idempotent (CREATE OR REPLACE).
"""

from alembic import op

revision = "0035"
down_revision = "0033"
branch_labels = None
depends_on = None

PUBLIC_ROLE = "citygrid_public"
# The one table each pub view of migration 0006 reads (stall_zones has no counter).
TABLES = ("districts", "subdistricts", "communities", "grid_cells", "roads", "stations",
          "facilities", "streetlights", "manhole_covers")


def upgrade() -> None:
    names = ", ".join(f"'{t}'" for t in TABLES)
    op.execute(f"""
        CREATE OR REPLACE FUNCTION pub.layer_versions()
        RETURNS TABLE (table_name text, version bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT d.table_name, d.version FROM data_versions d
            WHERE d.table_name IN ({names}) ORDER BY d.table_name
        $$""")
    op.execute("REVOKE EXECUTE ON FUNCTION pub.layer_versions() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION pub.layer_versions() TO {PUBLIC_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS pub.layer_versions()")
