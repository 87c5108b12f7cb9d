"""Doorplates name a road of the city: checked in the database, for every path that writes.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03

A doorplate (门牌) on a road the city does not have can never be matched (the geocoder keys
plates by the road's name), so a file importing one is an error, not data. `roads` holds
segments, so `road_name` cannot be a foreign key; a statement-level trigger checks all new or
changed rows at once (one anti-join, not a lookup per row) and refuses the statement with a
foreign-key-violation naming the first unknown road, so a layer import (all rows or none)
reports it as a 4xx naming the value. Aliases are refused too, with the road they stand for:
a plate is filed under the road's own name.
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS roads_name_idx ON roads (name)")
    op.execute("""
        CREATE FUNCTION doorplates_check_road() RETURNS trigger
        LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
        DECLARE
            bad text;
            canonical text;
        BEGIN
            SELECT n.road_name INTO bad FROM new_rows n
            WHERE n.road_name IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM roads r WHERE r.name = n.road_name)
            ORDER BY n.id LIMIT 1;
            IF bad IS NULL THEN
                RETURN NULL;
            END IF;
            SELECT a.road_name INTO canonical FROM road_aliases a WHERE a.alias = bad
            ORDER BY a.road_name LIMIT 1;
            RAISE EXCEPTION USING
                ERRCODE = 'foreign_key_violation',
                CONSTRAINT = 'doorplates_road_known',
                MESSAGE = CASE WHEN canonical IS NULL
                    THEN format('doorplate road %L is not a road of the city', bad)
                    ELSE format('doorplate road %L is an alias: file it under %L', bad, canonical)
                END;
        END $$
    """)
    for event in ("INSERT", "UPDATE"):
        op.execute(f"""
            CREATE TRIGGER doorplates_road_known_{event.lower()} AFTER {event} ON doorplates
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION doorplates_check_road()
        """)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS doorplates_road_known_insert ON doorplates")
    op.execute("DROP TRIGGER IF EXISTS doorplates_road_known_update ON doorplates")
    op.execute("DROP FUNCTION IF EXISTS doorplates_check_road()")
    op.execute("DROP INDEX IF EXISTS roads_name_idx")
