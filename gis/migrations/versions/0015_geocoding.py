"""Geocoding (地理编码): doorplates (门牌), residential compounds, road aliases and a gazetteer.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

* `road_aliases`: other names of a road (old names, names without a prefix); a road is its
  name, since `roads` holds segments between crossings.
* `compounds` (小区/院落): a named polygon whose buildings carry numbers (3号楼, 5栋).
* `doorplates` (门牌, GB/T 39609 门楼牌): a point that is either road + number (+ 甲/乙 or -2
  suffix) or compound + building, with its source (`simulated`, a file name, a survey).
* `gazetteer`: every name an address may cite, one row per (kind, source, name), kept current
  by statement triggers on the source tables (roads, aliases, subdistricts, communities,
  compounds, stations, facilities, stall zones, sensitive sites), so an edit and its gazetteer
  rows commit or roll back together. `gazetteer_version` counts changes, so a process may
  cache the gazetteer and notice when it is stale. pg_trgm indexes the names for fuzzy search.

The refresh functions are SECURITY DEFINER: whichever role edits a layer (the app, a grid
owner's scoped role) updates the gazetteer through them without holding rights on it.
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

VALID = "CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom))"
LONLAT = ("CHECK (ST_X(geom) BETWEEN -180 AND 180 AND ST_Y(geom) BETWEEN -90 AND 90 "
          "AND ST_X(geom) = ST_X(geom) AND ST_Y(geom) = ST_Y(geom))")
APP_ROLE = "citygrid_app"
KINDS = ("'road', 'subdistrict', 'community', 'compound', 'station', 'facility', "
         "'stall_zone', 'site'")

SCHEMA = f"""
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE road_aliases (
    id serial PRIMARY KEY,
    road_name text NOT NULL CHECK (road_name <> ''),
    alias text NOT NULL CHECK (alias <> '' AND alias <> road_name),
    simulated boolean NOT NULL DEFAULT false,
    UNIQUE (road_name, alias)
);

CREATE TABLE compounds (
    id serial PRIMARY KEY,
    name text NOT NULL CHECK (name <> ''),
    community_code char(12) REFERENCES communities(code) ON DELETE SET NULL,
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(Polygon, 4326) NOT NULL {VALID}
);
CREATE INDEX compounds_geom_gist ON compounds USING gist (geom);

CREATE TABLE doorplates (
    id bigserial PRIMARY KEY,
    road_name text CHECK (road_name <> ''),
    number integer CHECK (number BETWEEN 1 AND 99999),
    suffix text NOT NULL DEFAULT '' CHECK (suffix ~ '^(|[甲乙丙丁]|-[0-9]{{1,3}})$'),
    compound_id integer REFERENCES compounds(id) ON DELETE CASCADE,
    building text CHECK (building ~ '^[0-9A-Z]{{1,6}}$'),
    source text NOT NULL CHECK (source <> ''),
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(Point, 4326) NOT NULL {LONLAT},
    CHECK ((road_name IS NOT NULL AND number IS NOT NULL AND compound_id IS NULL
            AND building IS NULL)
        OR (road_name IS NULL AND number IS NULL AND suffix = '' AND compound_id IS NOT NULL
            AND building IS NOT NULL))
);
CREATE UNIQUE INDEX doorplates_road_number_key ON doorplates (road_name, number, suffix)
    WHERE road_name IS NOT NULL;
CREATE UNIQUE INDEX doorplates_building_key ON doorplates (compound_id, building)
    WHERE compound_id IS NOT NULL;
CREATE INDEX doorplates_geom_gist ON doorplates USING gist (geom);

CREATE TABLE gazetteer (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ({KINDS})),
    source_key text NOT NULL,
    name text NOT NULL CHECK (name <> ''),
    canonical text NOT NULL CHECK (canonical <> ''),
    public boolean NOT NULL,
    geom geometry(Geometry, 4326) NOT NULL,
    UNIQUE (kind, source_key, name)
);
CREATE INDEX gazetteer_name_trgm ON gazetteer USING gin (name gin_trgm_ops);
CREATE INDEX gazetteer_geom_gist ON gazetteer USING gist (geom);

CREATE TABLE gazetteer_version (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO gazetteer_version (version) VALUES (0);
"""

# kind -> SQL selecting (source_key, name, canonical, public, geom) for keys = ANY($1).
SOURCES = {
    "road": """
        SELECT r.name, n.name, r.name, true, r.geom
        FROM (SELECT name, ST_LineMerge(ST_Collect(geom)) AS geom FROM roads
              WHERE name = ANY(p_keys) GROUP BY name) r
        CROSS JOIN LATERAL (SELECT r.name UNION
                            SELECT alias FROM road_aliases a WHERE a.road_name = r.name) n(name)
    """,
    "subdistrict": "SELECT code, name, name, true, geom FROM subdistricts WHERE code = ANY(p_keys)",
    "community": "SELECT code, name, name, true, geom FROM communities WHERE code = ANY(p_keys)",
    "compound": ("SELECT id::text, name, name, true, geom FROM compounds "
                 "WHERE id::text = ANY(p_keys)"),
    "station": "SELECT id::text, name, name, true, geom FROM stations WHERE id::text = ANY(p_keys)",
    "facility": ("SELECT id::text, name, name, true, geom FROM facilities "
                 "WHERE id::text = ANY(p_keys)"),
    "stall_zone": ("SELECT id::text, name, name, status = 'approved', geom FROM stall_zones "
                   "WHERE id::text = ANY(p_keys) AND status <> 'retired'"),
    "site": ("SELECT id::text, name, name, true, geom FROM sensitive_sites "
             "WHERE id::text = ANY(p_keys) AND kind <> 'fire_lane'"),
}
# table -> (gazetteer kind, key expression on the table's rows)
TRIGGERS = {
    "roads": ("road", "name"),
    "road_aliases": ("road", "road_name"),
    "subdistricts": ("subdistrict", "code::text"),
    "communities": ("community", "code::text"),
    "compounds": ("compound", "id::text"),
    "stations": ("station", "id::text"),
    "facilities": ("facility", "id::text"),
    "stall_zones": ("stall_zone", "id::text"),
    "sensitive_sites": ("site", "id::text"),
}


def _refresh_function() -> str:
    branches = "\n".join(
        f"{'IF' if i == 0 else 'ELSIF'} p_kind = '{k}' THEN\n"
        f"    INSERT INTO gazetteer (kind, source_key, name, canonical, public, geom)\n"
        f"    SELECT '{k}', s.* FROM ({sql}) s ON CONFLICT DO NOTHING;"
        for i, (k, sql) in enumerate(SOURCES.items()))
    return f"""
        CREATE FUNCTION gazetteer_refresh(p_kind text, p_keys text[]) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        BEGIN
            IF p_keys IS NULL OR cardinality(p_keys) = 0 THEN
                RETURN;
            END IF;
            DELETE FROM gazetteer g WHERE g.kind = p_kind
                AND g.source_key = ANY(p_keys);
            {branches}
            END IF;
            UPDATE gazetteer_version SET version = version + 1, changed_at = now();
        END $$
    """


TRIGGER_FUNCTION = """
    CREATE FUNCTION gazetteer_sync() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        keys text[];
    BEGIN
        -- TG_ARGV: gazetteer kind, key expression. Transition tables hold the changed rows.
        IF TG_OP = 'INSERT' THEN
            EXECUTE format('SELECT array_agg(DISTINCT %s) FROM new_rows', TG_ARGV[1]) INTO keys;
        ELSIF TG_OP = 'DELETE' THEN
            EXECUTE format('SELECT array_agg(DISTINCT %s) FROM old_rows', TG_ARGV[1]) INTO keys;
        ELSE
            EXECUTE format('SELECT array_agg(DISTINCT k) FROM (SELECT %1$s AS k FROM new_rows '
                           'UNION ALL SELECT %1$s FROM old_rows) s', TG_ARGV[1]) INTO keys;
        END IF;
        PERFORM gazetteer_refresh(TG_ARGV[0], keys);
        RETURN NULL;
    END $$
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(_refresh_function())
    op.execute(TRIGGER_FUNCTION)
    for table, (kind, key) in TRIGGERS.items():
        args = f"'{kind}', '{key}'"
        op.execute(f"CREATE TRIGGER {table}_gazetteer_ins AFTER INSERT ON {table} "
                   "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                   f"EXECUTE FUNCTION gazetteer_sync({args})")
        op.execute(f"CREATE TRIGGER {table}_gazetteer_upd AFTER UPDATE ON {table} "
                   "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
                   f"EXECUTE FUNCTION gazetteer_sync({args})")
        op.execute(f"CREATE TRIGGER {table}_gazetteer_del AFTER DELETE ON {table} "
                   "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
                   f"EXECUTE FUNCTION gazetteer_sync({args})")
        # Rows already there (a database migrated with data) enter the gazetteer now.
        op.execute(f"SELECT gazetteer_refresh('{kind}', "
                   f"(SELECT array_agg(DISTINCT {key}) FROM {table}))")
    for table in ("road_aliases", "compounds", "doorplates"):
        op.execute(f"CREATE TRIGGER {table}_audit AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION citygrid_audit()")
    # As migration 0012 did for the functions before it: not callable by everyone.
    for fn in ("gazetteer_refresh(text, text[])", "gazetteer_sync()"):
        op.execute(f"REVOKE EXECUTE ON FUNCTION {fn} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION gazetteer_refresh(text, text[]) TO {APP_ROLE}")
    # The gazetteer is derived: the app reads it, only the triggers write it.
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON gazetteer, gazetteer_version FROM {APP_ROLE}")


def downgrade() -> None:
    for table in TRIGGERS:
        for suffix in ("ins", "upd", "del"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_gazetteer_{suffix} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS gazetteer_sync()")
    op.execute("DROP FUNCTION IF EXISTS gazetteer_refresh(text, text[])")
    op.execute("DROP TABLE IF EXISTS gazetteer_version, gazetteer, doorplates, compounds, "
               "road_aliases")
