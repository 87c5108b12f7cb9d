"""Stall zone planning: version history, sensitive sites, zone-to-grid assignment.

Revision ID: 0004
Revises: 0003

- `stall_zones` gains `version` and `updated_at`; the current row is always the latest version.
- `stall_zone_versions` keeps every version of every zone (attributes + geometry, who and when,
  what action). Rows are never updated or deleted by the application: a trigger refuses it.
- `sensitive_sites` holds what stalls must keep away from: school gates, kindergartens,
  hospitals, metro exits (points or polygons) and fire lanes (lines with the width to keep
  clear). Fire lanes live here rather than in `roads` because most of them are not streets
  (lanes through residential compounds, building access strips) and carry no street class; a
  road that is also a fire lane is drawn once more here as a line.
- `zone_grids` maps a zone to every unit grid it touches, with the overlap area.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SITE_KINDS = "('school_gate', 'kindergarten', 'hospital', 'metro_exit', 'fire_lane')"

SCHEMA = f"""
ALTER TABLE stall_zones
    ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version > 0),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE stall_zone_versions (
    id bigserial PRIMARY KEY,
    zone_id integer NOT NULL REFERENCES stall_zones(id) ON DELETE RESTRICT,
    version integer NOT NULL CHECK (version > 0),
    action text NOT NULL CHECK (action IN ('create', 'update', 'approve', 'retire')),
    name text NOT NULL,
    zone_type text NOT NULL,
    district_code char(6) NOT NULL,
    time_slots jsonb NOT NULL,
    seasons jsonb NOT NULL,
    capacity integer NOT NULL,
    operator text NOT NULL,
    status text NOT NULL,
    simulated boolean NOT NULL,
    grid_codes text[] NOT NULL DEFAULT '{{}}',
    changed_by text NOT NULL CHECK (changed_by <> ''),
    changed_at timestamptz NOT NULL DEFAULT now(),
    geom geometry(Polygon, 4326) NOT NULL,
    UNIQUE (zone_id, version)
);

-- History is append-only: a version, once written, is evidence.
CREATE FUNCTION stall_zone_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stall_zone_versions is append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER stall_zone_versions_append_only BEFORE UPDATE OR DELETE ON stall_zone_versions
    FOR EACH ROW EXECUTE FUNCTION stall_zone_versions_append_only();

CREATE TABLE sensitive_sites (
    id serial PRIMARY KEY,
    name text NOT NULL CHECK (name <> ''),
    kind text NOT NULL CHECK (kind IN {SITE_KINDS}),
    -- Fire lanes only: the width that must stay clear (4 m by the fire code).
    clear_width_m double precision CHECK (clear_width_m IS NULL OR clear_width_m > 0),
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(Geometry, 4326) NOT NULL
        CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
    CHECK (CASE WHEN kind = 'fire_lane' THEN GeometryType(geom) = 'LINESTRING'
                ELSE GeometryType(geom) IN ('POINT', 'POLYGON') END)
);
CREATE INDEX sensitive_sites_geom_gist ON sensitive_sites USING gist (geom);
CREATE INDEX sensitive_sites_kind_idx ON sensitive_sites (kind);

CREATE TABLE zone_grids (
    zone_id integer NOT NULL REFERENCES stall_zones(id) ON DELETE CASCADE,
    grid_code varchar(15) NOT NULL REFERENCES grid_cells(code),
    overlap_m2 double precision NOT NULL CHECK (overlap_m2 >= 0),
    PRIMARY KEY (zone_id, grid_code)
);
CREATE INDEX zone_grids_grid_idx ON zone_grids (grid_code);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS zone_grids")
    op.execute("DROP TABLE IF EXISTS sensitive_sites")
    op.execute("DROP TABLE IF EXISTS stall_zone_versions")
    op.execute("DROP FUNCTION IF EXISTS stall_zone_versions_append_only()")
    op.execute("ALTER TABLE stall_zones DROP COLUMN IF EXISTS updated_at, "
               "DROP COLUMN IF EXISTS version")
