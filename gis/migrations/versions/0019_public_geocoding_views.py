"""Public geocoding reads through the public role: names, doorplates and the version, in `pub`.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03

The convenience map's address search (`GET /public/geocode`) is anonymous, so it reads through
`citygrid_public`, which sees schema `pub` only. These views hold what that search may show:
the public names of roads, stations, facilities and approved stall zones (never communities,
compounds, sensitive sites, cases, grid owners or contacts), the road doorplates (road, number,
suffix, point; not their source) and the gazetteer version, so a process can cache them and
notice edits. Each point is a representative point as lon/lat numbers and no view carries a
geometry column, so the OGC API (which lists only the spatial views of `pub`) does not publish
them as collections.
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

PUBLIC_KINDS = "'road', 'station', 'facility', 'stall_zone'"
VIEWS = {
    "geocode_names": f"""
        SELECT g.id, g.kind, g.source_key, g.name, g.canonical,
               round(ST_X(p.g)::numeric, 7) AS lon, round(ST_Y(p.g)::numeric, 7) AS lat
        FROM gazetteer g, LATERAL (SELECT ST_PointOnSurface(g.geom) AS g) p
        WHERE g.public AND g.kind IN ({PUBLIC_KINDS})""",
    "geocode_doorplates": """
        SELECT d.id, d.road_name, d.number, d.suffix,
               round(ST_X(d.geom)::numeric, 7) AS lon, round(ST_Y(d.geom)::numeric, 7) AS lat
        FROM doorplates d WHERE d.road_name IS NOT NULL""",
    "geocode_version": "SELECT version FROM gazetteer_version",
}


def upgrade() -> None:
    for name, query in VIEWS.items():
        op.execute(f"CREATE VIEW pub.{name} AS {query}")
        op.execute(f"GRANT SELECT ON pub.{name} TO citygrid_public, citygrid_app")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS pub.{name}")
