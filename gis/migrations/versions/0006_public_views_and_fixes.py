"""Public views (schema `pub`), finite raw coordinates on cases, index on cases.repeat_of.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

* `raw_x = raw_x` in 0001 was meant to keep NaN out, but PostgreSQL orders NaN equal to
  itself, so it let NaN through; Infinity was never checked. Both are now refused.
* Repeat-complaint lookups walk `repeat_of`; without an index every link is a scan of 50k+ cases.
* Schema `pub` holds one view per public layer with only the columns the public may see
  (no owners, no staff counts, no drafts, no complaints). The public map, OGC API Features and
  vector tiles read these views and nothing else, so a new internal column on a table can
  never leak by accident. Every view has an `id` column because OGC clients need a stable key.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PUBLIC_VIEWS = {
    "districts": "SELECT code::text AS id, code::text AS code, name, simulated, geom "
                 "FROM districts",
    "subdistricts": "SELECT code::text AS id, code::text AS code, name, "
                    "district_code::text AS district_code, geom FROM subdistricts",
    "communities": "SELECT code::text AS id, code::text AS code, name, "
                   "subdistrict_code::text AS subdistrict_code, geom FROM communities",
    "grid_cells": "SELECT code::text AS id, code::text AS code, "
                  "community_code::text AS community_code, area_m2, geom FROM grid_cells",
    "roads": "SELECT id, name, street_class, width_m, geom FROM roads",
    "stations": "SELECT id, code, name, address, phone, opening_hours, "
                "community_code::text AS community_code, geom FROM stations",
    "facilities": "SELECT id, name, kind, address, opening_hours, phone, geom FROM facilities",
    "stall_zones": "SELECT id, name, zone_type, district_code::text AS district_code, "
                   "time_slots, seasons, capacity, operator, geom "
                   "FROM stall_zones WHERE status = 'approved'",
    "streetlights": "SELECT code::text AS id, code::text AS code, state, lit, geom "
                    "FROM streetlights",
    "manhole_covers": "SELECT code::text AS id, code::text AS code, "
                      "cover_class::text AS cover_class, state, geom FROM manhole_covers",
}


def upgrade() -> None:
    op.execute("""
        ALTER TABLE cases ADD CONSTRAINT cases_raw_finite CHECK (
            raw_x NOT IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)
            AND raw_y NOT IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8))
    """)
    op.execute("CREATE INDEX IF NOT EXISTS cases_repeat_of_idx ON cases (repeat_of)")
    op.execute("CREATE SCHEMA IF NOT EXISTS pub")
    op.execute("COMMENT ON SCHEMA pub IS 'citygrid public layers: safe to publish'")
    for name, query in PUBLIC_VIEWS.items():
        op.execute(f"CREATE VIEW pub.{name} AS {query}")


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS pub CASCADE")
    op.execute("DROP INDEX IF EXISTS cases_repeat_of_idx")
    op.execute("ALTER TABLE cases DROP CONSTRAINT IF EXISTS cases_raw_finite")
