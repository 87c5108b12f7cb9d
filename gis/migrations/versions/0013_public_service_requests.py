"""Open311 reads through the public role: service requests and services as views of `pub`.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

Open311 GET is anonymous, so since 0012 its rows come through `citygrid_public`, which reads
schema `pub` only. These two views hold exactly what GeoReport v2 publishes (the reporter's
contact columns are not in them) and carry no geometry column, so the OGC API, which lists
the spatial views of `pub`, does not publish them as layers. Descriptions and addresses are
still masked in Python (`gis.public.masking.redact`) before they leave.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

VIEWS = {
    "service_requests": """
        SELECT c.id, c.case_no, c.category_type, c.category_code, c.description, c.status,
               c.urgency, c.area_type, c.reported_at, c.dispatch_due_at, c.due_at, c.closed_at,
               ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat,
               o.address_string, o.media_url, o.component_code,
               (SELECT max(t.at) FROM case_transitions t WHERE t.case_id = c.id) AS updated_at,
               coalesce(e.name_zh, k.name_zh) AS service_name
        FROM cases c
        LEFT JOIN open311_requests o ON o.case_id = c.id
        LEFT JOIN event_categories e ON c.category_type = 'event' AND e.code = c.category_code
        LEFT JOIN component_classes k
               ON c.category_type = 'component' AND k.code = c.category_code""",
    "services": """
        SELECT 'event' AS type, code, major, name_zh FROM event_categories
        UNION ALL
        SELECT 'component', code, major, name_zh FROM component_classes""",
}


def upgrade() -> None:
    for name, query in VIEWS.items():
        op.execute(f"CREATE VIEW pub.{name} AS {query}")
        op.execute(f"GRANT SELECT ON pub.{name} TO citygrid_public, citygrid_app")


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS pub.{name}")
