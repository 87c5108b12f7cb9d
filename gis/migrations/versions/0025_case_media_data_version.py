"""Data version of case_media: reports count photo evidence (处置后照片率, 核查及时率).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03

The same statement trigger as migration 0022, so a report cached by the analysis result cache
is computed afresh once a photo is uploaded or superseded.
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("INSERT INTO data_versions (table_name, version) "
               "VALUES ('case_media', nextval('data_versions_seq'))")
    op.execute("CREATE TRIGGER case_media_data_version AFTER INSERT OR UPDATE OR DELETE "
               "OR TRUNCATE ON case_media FOR EACH STATEMENT "
               "EXECUTE FUNCTION data_version_bump()")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS case_media_data_version ON case_media")
    op.execute("DELETE FROM data_versions WHERE table_name = 'case_media'")
