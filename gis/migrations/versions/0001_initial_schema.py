"""Initial schema: administrative areas, unit grids with versioned owners, every asset layer, cases.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Storage SRID is 4326 (WGS84 == CGCS2000 to ~10 cm here); lengths and areas are computed in
EPSG:4548 or with geography. Constraints keep bad rows out even when a writer skips the
Python validation.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# A polygon column: right type and SRID by typmod, valid and non-empty by CHECK.
VALID = "CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom))"
# Points must be real lon/lat (typmod does not check the range).
LONLAT = ("CHECK (ST_X(geom) BETWEEN -180 AND 180 AND ST_Y(geom) BETWEEN -90 AND 90 "
          "AND ST_X(geom) = ST_X(geom) AND ST_Y(geom) = ST_Y(geom))")
COMPONENT_STATES = "('intact', 'damaged', 'missing', 'occupied')"

SCHEMA = f"""
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Code tables are configuration (seeded here, editable later), not constants in code.
CREATE TABLE component_classes (
    code char(4) PRIMARY KEY CHECK (code ~ '^[0-9]{{4}}$'),
    major char(2) NOT NULL CHECK (major = left(code, 2)),
    name_zh text NOT NULL,
    default_owner text
);
CREATE TABLE event_categories (
    code char(4) PRIMARY KEY CHECK (code ~ '^[0-9]{{4}}$'),
    major char(2) NOT NULL CHECK (major = left(code, 2)),
    name_zh text NOT NULL
);

CREATE TABLE districts (
    code char(6) PRIMARY KEY CHECK (code ~ '^[0-9]{{6}}$'),
    name text NOT NULL CHECK (name <> ''),
    source text NOT NULL,
    simulated boolean NOT NULL DEFAULT false,
    geom geometry(MultiPolygon, 4326) NOT NULL {VALID}
);
CREATE TABLE subdistricts (
    code char(9) PRIMARY KEY CHECK (code ~ '^[0-9]{{9}}$'),
    name text NOT NULL CHECK (name <> ''),
    district_code char(6) NOT NULL REFERENCES districts(code)
        CHECK (district_code = left(code, 6)),
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(MultiPolygon, 4326) NOT NULL {VALID}
);
CREATE TABLE communities (
    code char(12) PRIMARY KEY CHECK (code ~ '^[0-9]{{12}}$'),
    name text NOT NULL CHECK (name <> ''),
    subdistrict_code char(9) NOT NULL REFERENCES subdistricts(code)
        CHECK (subdistrict_code = left(code, 9)),
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(MultiPolygon, 4326) NOT NULL {VALID}
);

-- Unit grid codes: 12-digit community code + 2-digit (CJ/T 213, 14 digits) or
-- 3-digit (DB11, 15 digits) sequence.
CREATE TABLE grid_cells (
    code varchar(15) PRIMARY KEY CHECK (code ~ '^[0-9]{{14}}([0-9])?$'),
    community_code char(12) NOT NULL REFERENCES communities(code)
        CHECK (community_code = left(code, 12)),
    area_m2 double precision GENERATED ALWAYS AS (ST_Area(geom::geography)) STORED,
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(Polygon, 4326) NOT NULL {VALID}
);

-- Ownership is versioned: a complaint is judged against the owner of its day.
CREATE TABLE grid_owners (
    id serial PRIMARY KEY,
    grid_code varchar(15) NOT NULL REFERENCES grid_cells(code) ON DELETE CASCADE,
    owner_name text NOT NULL CHECK (owner_name <> ''),
    owner_kind text NOT NULL CHECK (owner_kind IN ('grid_worker', 'squad', 'local_government')),
    phone text NOT NULL CHECK (phone ~ '^(1[3-9][0-9]{{9}}|0[0-9]{{2,3}}-?[0-9]{{7,8}})$'),
    valid_from date NOT NULL,
    valid_to date CHECK (valid_to IS NULL OR valid_to > valid_from),
    EXCLUDE USING gist (grid_code WITH =, daterange(valid_from, valid_to) WITH &&)
);

CREATE TABLE stations (
    id serial PRIMARY KEY,
    code text NOT NULL UNIQUE CHECK (code <> ''),
    name text NOT NULL CHECK (name <> ''),
    address text NOT NULL,
    phone text NOT NULL CHECK (phone ~ '^(1[3-9][0-9]{{9}}|0[0-9]{{2,3}}-?[0-9]{{7,8}})$'),
    staff integer NOT NULL CHECK (staff >= 0),
    opening_hours text NOT NULL,
    community_code char(12) REFERENCES communities(code),
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(Point, 4326) NOT NULL {LONLAT}
);

CREATE TABLE roads (
    id serial PRIMARY KEY,
    name text NOT NULL CHECK (name <> ''),
    street_class text NOT NULL
        CHECK (street_class IN ('demonstration', 'managed', 'commercial', 'other')),
    width_m double precision NOT NULL CHECK (width_m > 0 AND width_m <= 200),
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(LineString, 4326) NOT NULL
        CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom) AND ST_NPoints(geom) >= 2)
);

-- Time slots: [{{"days": [1..7], "start": "HH:MM", "end": "HH:MM"}}], end < start crosses midnight.
-- Seasons: [{{"from": "MM-DD", "to": "MM-DD"}}], recurring every year.
CREATE TABLE stall_zones (
    id serial PRIMARY KEY,
    name text NOT NULL CHECK (name <> ''),
    zone_type text NOT NULL CHECK (zone_type IN ('morning_market', 'night_market',
        'seasonal_produce', 'convenience_point', 'featured_outdoor')),
    district_code char(6) NOT NULL REFERENCES districts(code),
    time_slots jsonb NOT NULL CHECK (jsonb_typeof(time_slots) = 'array'
        AND jsonb_array_length(time_slots) > 0),
    seasons jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(seasons) = 'array'),
    capacity integer NOT NULL CHECK (capacity > 0),
    operator text NOT NULL CHECK (operator <> ''),
    status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'approved', 'retired')),
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(Polygon, 4326) NOT NULL {VALID}
);

-- Components: 16 digits = 6 county + 2 major + 2 minor + 6 serial.
CREATE TABLE streetlights (
    code char(16) PRIMARY KEY CHECK (code ~ '^[0-9]{{16}}$' AND substr(code, 7, 4) = '0118'),
    state text NOT NULL DEFAULT 'intact' CHECK (state IN {COMPONENT_STATES}),
    lit boolean NOT NULL DEFAULT true,
    in_use boolean NOT NULL DEFAULT true,
    owner text NOT NULL CHECK (owner <> ''),
    maintainer text NOT NULL CHECK (maintainer <> ''),
    grid_code varchar(15) REFERENCES grid_cells(code),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(Point, 4326) NOT NULL {LONLAT}
);
CREATE TABLE manhole_covers (
    code char(16) PRIMARY KEY CHECK (code ~ '^[0-9]{{16}}$'
        AND substr(code, 7, 4) BETWEEN '0101' AND '0114'),
    cover_class char(4) GENERATED ALWAYS AS (substr(code, 7, 4)) STORED
        REFERENCES component_classes(code),
    state text NOT NULL DEFAULT 'intact' CHECK (state IN {COMPONENT_STATES}),
    in_use boolean NOT NULL DEFAULT true,
    owner text NOT NULL CHECK (owner <> ''),
    maintainer text NOT NULL CHECK (maintainer <> ''),
    grid_code varchar(15) REFERENCES grid_cells(code),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(Point, 4326) NOT NULL {LONLAT}
);

CREATE TABLE facilities (
    id serial PRIMARY KEY,
    name text NOT NULL CHECK (name <> ''),
    kind text NOT NULL CHECK (kind IN ('farmers_market', 'public_toilet', 'ev_charging',
        'parking', 'convenience_point')),
    address text NOT NULL,
    opening_hours text NOT NULL,
    phone text,
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(Point, 4326) NOT NULL {LONLAT}
);

CREATE TABLE cases (
    id bigserial PRIMARY KEY,
    case_no text NOT NULL UNIQUE CHECK (case_no <> ''),
    category_type text NOT NULL CHECK (category_type IN ('event', 'component')),
    category_code char(4) NOT NULL CHECK (category_code ~ '^[0-9]{{4}}$'),
    channel text NOT NULL CHECK (channel IN ('hotline_12345', 'hotline_12319', 'wechat',
        'patrol')),
    description text NOT NULL DEFAULT '',
    raw_x double precision NOT NULL CHECK (raw_x = raw_x),
    raw_y double precision NOT NULL CHECK (raw_y = raw_y),
    raw_crs text NOT NULL CHECK (raw_crs IN ('wgs84', 'gcj02', 'bd09', 'cgcs2000')),
    reported_at timestamptz NOT NULL,
    closed_at timestamptz CHECK (closed_at IS NULL OR closed_at >= reported_at),
    status text NOT NULL DEFAULT 'collected' CHECK (status IN ('collected', 'filed',
        'dispatched', 'handled', 'reported', 'closed', 'evaluated', 'rejected')),
    grid_code varchar(15) REFERENCES grid_cells(code),
    simulated boolean NOT NULL DEFAULT true,
    geom geometry(Point, 4326) NOT NULL {LONLAT}
);
CREATE INDEX cases_reported_at_idx ON cases (reported_at);
CREATE INDEX cases_category_idx ON cases (category_code);
"""

LAYER_TABLES = ["districts", "subdistricts", "communities", "grid_cells", "stations", "roads",
                "stall_zones", "streetlights", "manhole_covers", "facilities", "cases"]

COMPONENT_CLASSES = [
    ("0101", "上水井盖", "自来水公司"), ("0102", "污水井盖", "排水管理处"),
    ("0103", "雨水井盖", "排水管理处"), ("0104", "雨水箅子", "排水管理处"),
    ("0105", "电力井盖", "供电公司"), ("0106", "路灯井盖", "路灯管理处"),
    ("0107", "通讯井盖", "通信公司"), ("0108", "电视井盖", "广电网络公司"),
    ("0109", "网络井盖", "通信公司"), ("0110", "热力井盖", "热力公司"),
    ("0111", "燃气井盖", "燃气公司"), ("0112", "公安井盖", "公安局"),
    ("0113", "消防设施", "消防救援支队"), ("0114", "无主井盖", "属地街道办事处"),
    ("0117", "立杆", "路灯管理处"), ("0118", "路灯", "路灯管理处"),
    ("0119", "地灯", "路灯管理处"), ("0120", "景观灯", "园林绿化局"),
]
EVENT_CATEGORIES = [
    ("0101", "私搭乱建"), ("0102", "暴露垃圾"), ("0103", "积存垃圾渣土"), ("0104", "道路不洁"),
    ("0201", "非法小广告"), ("0301", "施工扰民"), ("0302", "工地扬尘"),
    ("0401", "路面塌陷"), ("0404", "下水道堵塞或破损"), ("0406", "道路积水"),
    ("0501", "无照经营游商"), ("0504", "店外经营"), ("0505", "占道经营"), ("0510", "露天烧烤"),
]


def upgrade() -> None:
    op.execute(SCHEMA)
    for table in LAYER_TABLES:
        op.execute(f"CREATE INDEX {table}_geom_gist ON {table} USING gist (geom)")
    for table in ("streetlights", "manhole_covers", "cases"):
        op.execute(f"CREATE INDEX {table}_grid_idx ON {table} (grid_code)")
    # Values are literals from this file, never user input.
    rows = ", ".join(f"('{c}', '{c[:2]}', '{n}', '{o}')" for c, n, o in COMPONENT_CLASSES)
    op.execute(f"INSERT INTO component_classes (code, major, name_zh, default_owner) VALUES {rows}")
    rows = ", ".join(f"('{c}', '{c[:2]}', '{n}')" for c, n in EVENT_CATEGORIES)
    op.execute(f"INSERT INTO event_categories (code, major, name_zh) VALUES {rows}")


def downgrade() -> None:
    for table in [*reversed(LAYER_TABLES), "grid_owners", "event_categories",
                  "component_classes"]:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
