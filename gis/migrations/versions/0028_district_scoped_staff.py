"""District-scoped staff: a user may belong to one district (NULL = the city centre).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-03

* `users.district_code` (NULL for the city centre, which sees the whole city).
* `citygrid_actor_district()`: the district of the user named by the transaction's
  `citygrid.actor` (which the API sets on every staff transaction, see
  gis.access.auth.tag_transaction), NULL for the centre, the CLI and anonymous requests.
* A RESTRICTIVE row-level-security policy on `cases` for the app role: a district user's
  transactions see, change and create only cases whose unit grid lies in their district (grid
  codes begin with the 6-digit district code, GB/T 30428.2), so a district sub-centre's
  dispatcher cannot read or dispatch another district's case by any query path. Grid owners
  keep their own (stricter) policies.
"""

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

APP_ROLE = "citygrid_app"
# A scalar subquery, so the function runs once per statement, not once per row.
IN_DISTRICT = ("(SELECT citygrid_actor_district()) IS NULL "
               "OR left(grid_code, 6) = (SELECT citygrid_actor_district())")


def upgrade() -> None:
    op.execute("ALTER TABLE users ADD COLUMN district_code char(6) "
               "REFERENCES districts(code) ON UPDATE CASCADE")
    # SECURITY DEFINER: the scoped grid-owner role may not read `users`; the function reads
    # one column of the row named by the transaction's actor and nothing else.
    op.execute("""
        CREATE FUNCTION citygrid_actor_district() RETURNS text
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT district_code::text FROM users
            WHERE username = nullif(current_setting('citygrid.actor', true), '') AND active
        $$
    """)
    op.execute("REVOKE EXECUTE ON FUNCTION citygrid_actor_district() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION citygrid_actor_district() TO {APP_ROLE}, "
               "citygrid_grid_owner")
    op.execute(f"CREATE POLICY cases_district ON cases AS RESTRICTIVE TO {APP_ROLE} "
               f"USING ({IN_DISTRICT}) WITH CHECK ({IN_DISTRICT})")


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS cases_district ON cases")
    op.execute("DROP FUNCTION IF EXISTS citygrid_actor_district()")
    op.execute("ALTER TABLE users DROP COLUMN IF EXISTS district_code")
