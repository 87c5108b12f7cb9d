"""Stall zones get a validity period (有效期), published as time on the OGC collection.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03

A stall zone is approved for a period: `valid_from` (first day) and `valid_to` (first day no
longer valid, NULL: until further notice), dates on the city's calendar, half-open like
`grid_owners`. Existing and newly drawn zones start on the day they were created.

`pub.stall_zones` publishes the period as two instants (`valid_from`, `valid_to`: midnight in
Beijing time, timestamptz) appended after the existing columns (CREATE OR REPLACE keeps the
views built on it). The OGC API reads them as the collection's time: `datetime` selects the
zones whose period intersects the instant or interval asked for, and the collection's
extent.temporal is computed from them (api/ogc_time.py).
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

CITY_TZ = "Asia/Shanghai"
OLD_VIEW = ("SELECT id, name, zone_type, district_code::text AS district_code, "
            "time_slots, seasons, capacity, operator, geom "
            "FROM stall_zones WHERE status = 'approved'")


def upgrade() -> None:
    op.execute("""
        ALTER TABLE stall_zones
            ADD COLUMN valid_from date NOT NULL DEFAULT current_date,
            ADD COLUMN valid_to date,
            ADD CONSTRAINT stall_zones_validity CHECK (valid_to IS NULL OR valid_to > valid_from)
    """)
    op.execute(f"UPDATE stall_zones SET valid_from = (updated_at AT TIME ZONE '{CITY_TZ}')::date")
    op.execute(f"""
        CREATE OR REPLACE VIEW pub.stall_zones AS
        SELECT id, name, zone_type, district_code::text AS district_code, time_slots, seasons,
               capacity, operator, geom,
               valid_from::timestamp AT TIME ZONE '{CITY_TZ}' AS valid_from,
               valid_to::timestamp AT TIME ZONE '{CITY_TZ}' AS valid_to
        FROM stall_zones WHERE status = 'approved'""")


def downgrade() -> None:
    # No CASCADE: a view built on this one since must be dropped by its own downgrade first.
    op.execute("DROP VIEW pub.stall_zones")
    op.execute(f"CREATE VIEW pub.stall_zones AS {OLD_VIEW}")
    op.execute("GRANT SELECT ON pub.stall_zones TO citygrid_public, citygrid_app")
    op.execute("""
        ALTER TABLE stall_zones DROP CONSTRAINT IF EXISTS stall_zones_validity,
            DROP COLUMN IF EXISTS valid_to, DROP COLUMN IF EXISTS valid_from""")
