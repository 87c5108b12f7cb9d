"""Analysis: a geography index on working streetlights for exact nearest-light search.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

Dark-street analysis asks, for each sample point along a road, how far the nearest *working*
light is. KNN (`<->`) on the storage SRID 4326 ranks by degrees, which at 36°N are 20 % shorter
east-west than north-south, so the nearest by degrees is not always the nearest in metres.
Ranking on geography is metric and CRS-free; the partial index holds only working lights
(intact, lit, in use), the only ones the question is about.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE INDEX streetlights_working_geog_gist ON streetlights
            USING gist ((geom::geography))
            WHERE state = 'intact' AND lit AND in_use
    """)
    op.execute("CREATE INDEX stations_geog_gist ON stations USING gist ((geom::geography))")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS stations_geog_gist")
    op.execute("DROP INDEX IF EXISTS streetlights_working_geog_gist")
