"""tipg's catalog functions in schema `ogc_catalog`, so /ogc reads can go to a hot standby.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-03

tipg creates its catalog functions in `pg_temp` on every new connection, which a read-only
standby refuses. Installed once here by the owner (the SQL of the installed tipg, see
gis.platform.ogc_catalog), they reach every standby by physical replication, and the /ogc
pools only set their search path to the schema. `citygrid_public` gets USAGE on the schema and
EXECUTE on its functions, nothing else; the functions run with the caller's rights.
"""

from alembic import op

from gis.platform.ogc_catalog import install, uninstall

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    install(op.get_bind())


def downgrade() -> None:
    uninstall(op.get_bind())
